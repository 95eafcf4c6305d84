#!/bin/sh
# A visit counter kept in the session: answers X-Session-Incr, which adds
# one in the store atomically, so reloads racing each other lose no visit
# (a read-then-X-Session-Set would). POST resets it.
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
printf 'X-Session-Incr: count=1\n'
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
<code>X-Session-Data</code> request header to show it, and answered
<code>X-Session-Incr: count=1</code>, which adds one in the session store in one
atomic step: twenty reloads at once count twenty. The reset button answers
<code>X-Session-Delete: count</code>.</p></div>
HTML
page_end
