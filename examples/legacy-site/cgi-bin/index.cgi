#!/bin/sh
# The home page: who you are, and where to go.
. "$(dirname "$0")/../lib/layout.sh"

printf 'Content-Type: text/html; charset=utf-8\n\n'
page_start "Welcome to The Old Web Page"

if [ -n "${HTTP_X_SESSION_USER-}" ]; then
    printf '<p>Hello, <b>%s</b>! Good to see you again.</p>\n' "$(html "$HTTP_X_SESSION_USER")"
else
    printf '<p>You are <b>not signed in</b>. You can look around all the same,\n'
    printf 'or <a href="%s/login.cgi">sign in</a> (try <i>alice</i> / <i>wonderland</i>).</p>\n' "$(html "$BASE")"
fi
if [ "${HTTP_X_SESSION_NEW-}" = 1 ]; then
    printf '<p><i>A session was started just now, for this very visit.</i></p>\n'
fi

cat <<HTML
<div class="box">
<p>These pages are ordinary CGI scripts from another age. They know nothing
about cookies or logins: sessiongate, in front of them, keeps the session and
tells each script about it in a few request headers.</p>
</div>
<ul>
<li><a href="$(html "$BASE")/counter.cgi">Visit counter</a> &mdash; a number kept in your session.</li>
<li><a href="$(html "$BASE")/survey.cgi">The Great Web Survey</a> &mdash; three questions, answers remembered between pages.</li>
<li><a href="$(html "$BASE")/members.cgi">Members' lounge</a> &mdash; for signed-in visitors only.</li>
<li><a href="/pages/">Old pages</a> &mdash; plain files, served by sessiongate itself.</li>
<li><a href="$(html "$BASE")/login.cgi">Sign in</a> and <a href="$(html "$BASE")/logout.cgi">sign out</a> &mdash; the site's own login form.</li>
</ul>
<p><i>This page is always under construction.</i></p>
HTML
page_end
