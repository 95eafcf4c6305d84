#!/bin/sh
# A visit counter kept in the session: reads "count" from the session data
# and answers X-Session-Set with the next number. POST resets it.
. "$(dirname "$0")/../lib/layout.sh"

if [ "${REQUEST_METHOD-}" = POST ]; then
    printf 'Status: 303 See Other\n'
    printf 'X-Session-Delete: count\n'
    printf 'Location: %s/counter.cgi\n' "$BASE"
    printf 'Content-Type: text/plain\n\nCounter reset.\n'
    exit 0
fi

count=$(session_get count)
case $count in
    '' | *[!0-9]* | ??????????*) count=0 ;;
esac
count=$((count + 1))

printf 'Content-Type: text/html; charset=utf-8\n'
printf 'X-Session-Set: count=%s\n' "$count"
printf '\n'
page_start "Visit counter"
if [ "$count" -eq 1 ]; then times="time"; else times="times"; fi
cat <<HTML
<p>You have been to this page</p>
<p class="big">$count</p>
<p>$times in this session. Reload to count up.</p>
<form method="post" action="$(html "$BASE")/counter.cgi">
<input type="submit" value="Reset the counter">
</form>
<div class="box"><p>Behind the scenes: the script read <code>count</code> from the
<code>X-Session-Data</code> request header and answered
<code>X-Session-Set: count=$count</code>. The reset button answers
<code>X-Session-Delete: count</code>.</p></div>
HTML
page_end
