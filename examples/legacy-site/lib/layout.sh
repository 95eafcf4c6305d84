# The shared page frame of the demo site's shell scripts.
#
# Sourced by every .sh CGI script:  . "$(dirname "$0")/../lib/layout.sh"
# It lives outside cgi-bin/, so no URL can reach it.

LIB_DIR=$(dirname "$0")/../lib

# Where the scripts sit in URL space: "" when cgi-bin/ is served at "/",
# "/old" when it is served at "/old/". Links are built on it.
BASE=${SCRIPT_NAME%/*}

# html TEXT: print TEXT with the HTML special characters escaped.
html() {
    printf '%s' "$1" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' \
        -e 's/"/\&quot;/g' -e "s/'/\&#39;/g"
}

# session_get KEY: print the value of KEY in the session data, still
# urlencoded; nothing when the key is not there.
# sessiongate sends the data as X-Session-Data: count=3&lang=en
session_get() {
    printf '%s\n' "${HTTP_X_SESSION_DATA-}" | tr '&' '\n' | sed -n "s/^$1=//p" | head -n 1
}

# page_start TITLE: print the top of an HTML page (after the CGI headers).
page_start() {
    cat <<HTML
<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>$(html "$1") - The Old Web Page</title>
<style>
$(cat "$LIB_DIR/../htdocs/site.css")
</style>
</head>
<body>
<div class="nav">
HTML
    if [ -n "${HTTP_X_SESSION_USER-}" ]; then
        printf '<span class="who">Signed in as <b>%s</b> &middot; <a href="%s/logout.cgi">Sign out</a></span>\n' \
            "$(html "$HTTP_X_SESSION_USER")" "$(html "$BASE")"
    else
        printf '<span class="who">Not signed in &middot; <a href="%s/login.cgi">Sign in</a></span>\n' "$(html "$BASE")"
    fi
    cat <<HTML
[ <a href="$(html "$BASE")/">Home</a>
| <a href="$(html "$BASE")/counter.cgi">Counter</a>
| <a href="$(html "$BASE")/survey.cgi">Survey</a>
| <a href="$(html "$BASE")/members.cgi">Members</a> ]
</div>
<h1>$(html "$1")</h1>
HTML
}

# page_end: print the bottom of an HTML page.
page_end() {
    cat <<HTML
<p class="footer">This site is best viewed with any browser.
Sessions courtesy of sessiongate; the pages are plain CGI.</p>
</body>
</html>
HTML
}
