#!/bin/sh
# The office: for the admins group only. The route in front of it has
# access = "login" and allow = ["group:admins"], so sessiongate lets only
# members of that group in (others get its 403 page); sessiongate tells the
# script the user's groups in X-Session-Groups. The script still checks, in
# case it is ever served without that protection.
. "$(dirname "$0")/../lib/layout.sh"

printf 'Content-Type: text/html; charset=utf-8\n'
printf 'Cache-Control: private, no-store\n\n'
page_start "The office"

case ",${HTTP_X_SESSION_GROUPS-}," in
    *,admins,*) ;;
    *)
        printf '<p class="error">The office is for administrators only.</p>\n'
        page_end
        exit 0
        ;;
esac

printf '<p>Welcome to the office, <b>%s</b>. Mind the filing cabinets.</p>\n' "$(html "$HTTP_X_SESSION_USER")"
printf '<p>Your groups: <code>%s</code></p>\n' "$(html "$HTTP_X_SESSION_GROUPS")"
page_end
