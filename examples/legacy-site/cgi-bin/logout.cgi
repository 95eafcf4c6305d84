#!/bin/sh
# Ends the session: X-Session-Logout makes sessiongate destroy it and clear
# the cookie, then the browser goes back to the home page.
. "$(dirname "$0")/../lib/layout.sh"

printf 'Status: 303 See Other\n'
printf 'X-Session-Logout: 1\n'
printf 'Location: %s/\n' "$BASE"
printf 'Content-Type: text/html; charset=utf-8\n\n'
printf '<p>Signed out. Back to the <a href="%s/">home page</a>.</p>\n' "$(html "$BASE")"
