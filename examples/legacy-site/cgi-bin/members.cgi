#!/bin/sh
# Members only. The route in front of it has access = "login", so
# sessiongate sends anonymous visitors to the login page first; the script
# still checks, in case it is ever served without that protection.
. "$(dirname "$0")/../lib/layout.sh"

printf 'Content-Type: text/html; charset=utf-8\n'
printf 'Cache-Control: private, no-store\n\n'
page_start "Members' lounge"

if [ -z "${HTTP_X_SESSION_USER-}" ]; then
    printf '<p class="error">You are not signed in.</p>\n'
    printf '<p>Please <a href="%s/login.cgi?next=%s/members.cgi">sign in</a> first.</p>\n' \
        "$(html "$BASE")" "$(html "$BASE")"
    page_end
    exit 0
fi

# when SECONDS: a unix time as a readable date, or as it is.
when() {
    case $1 in
        '' | *[!0-9]*) printf 'unknown' ;;
        *) date -u -d "@$1" '+%Y-%m-%d %H:%M:%S UTC' 2>/dev/null || printf '%s' "$1" ;;
    esac
}

printf '<p>Welcome to the lounge, <b>%s</b>. Have a seat by the fire.</p>\n' "$(html "$HTTP_X_SESSION_USER")"
cat <<HTML
<table>
<tr><th>Session started</th><td>$(when "${HTTP_X_SESSION_CREATED-}")</td></tr>
<tr><th>Session ends</th><td>$(when "${HTTP_X_SESSION_EXPIRES-}") unless you sign out first</td></tr>
<tr><th>Session data</th><td><code>$(html "${HTTP_X_SESSION_DATA:-(empty)}")</code></td></tr>
</table>
<p><a href="$(html "$BASE")/logout.cgi">Sign out</a></p>
HTML
page_end
