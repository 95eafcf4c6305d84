"""The shared page frame of the demo site's Python scripts.

Imported by every .py CGI script after adding this directory to sys.path.
It lives outside cgi-bin/, so no URL can reach it. Standard library only.
"""

import html
import os
import sys
import urllib.parse

LIB_DIR = os.path.dirname(os.path.abspath(__file__))

# Where the scripts sit in URL space: "" when cgi-bin/ is served at "/".
BASE = os.environ.get("SCRIPT_NAME", "").rpartition("/")[0]

# The most of a request body the scripts read.
MAX_BODY = 64 * 1024


def esc(text):
    """The text with the HTML special characters escaped."""
    return html.escape(text, quote=True)


def user():
    """The signed-in user, as sessiongate reports it; None when anonymous."""
    return os.environ.get("HTTP_X_SESSION_USER") or None


def session_data():
    """The session's data: sessiongate sends it urlencoded in X-Session-Data."""
    raw = os.environ.get("HTTP_X_SESSION_DATA", "")
    return dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))


def form():
    """The submitted form: the urlencoded POST body, or the query string."""
    if os.environ.get("REQUEST_METHOD") == "POST":
        try:
            length = min(int(os.environ.get("CONTENT_LENGTH", "0")), MAX_BODY)
        except ValueError:
            length = 0
        raw = sys.stdin.buffer.read(length).decode("utf-8", "replace")
    else:
        raw = os.environ.get("QUERY_STRING", "")
    return dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))


def page(title, body):
    """A whole HTML page around the body (already HTML)."""
    with open(os.path.join(LIB_DIR, "..", "htdocs", "site.css"), encoding="utf-8") as css_file:
        css = css_file.read()
    base = esc(BASE)
    name = user()
    if name:
        who = ('Signed in as <b>%s</b> &middot; <a href="%s/logout.cgi">Sign out</a>'
               % (esc(name), base))
    else:
        who = 'Not signed in &middot; <a href="%s/login.cgi">Sign in</a>' % base
    return """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>%(title)s - The Old Web Page</title>
<style>
%(css)s
</style>
</head>
<body>
<div class="nav">
<span class="who">%(who)s</span>
[ <a href="%(base)s/">Home</a>
| <a href="%(base)s/counter.cgi">Counter</a>
| <a href="%(base)s/survey.cgi">Survey</a>
| <a href="%(base)s/members.cgi">Members</a> ]
</div>
<h1>%(title)s</h1>
%(body)s
<p class="footer">This site is best viewed with any browser.
Sessions courtesy of sessiongate; the pages are plain CGI.</p>
</body>
</html>
""" % {"title": esc(title), "css": css, "who": who, "base": base, "body": body}


def respond(headers, body=""):
    """Print the CGI header block, then the body.

    headers is a list of (name, value) pairs; Content-Type is added when
    there is a body and none was given.
    """
    if body and not any(name.lower() == "content-type" for name, _ in headers):
        headers = headers + [("Content-Type", "text/html; charset=utf-8")]
    head = "".join("%s: %s\r\n" % (name, value) for name, value in headers)
    sys.stdout.buffer.write((head + "\r\n").encode("latin-1"))
    sys.stdout.buffer.write(body.encode("utf-8"))
    sys.stdout.buffer.flush()
