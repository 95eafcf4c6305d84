#!/usr/bin/env python3
"""The site's own login form.

GET shows the form; POST checks the user name and password against the
demo accounts below and, on success, answers X-Session-Login so that
sessiongate marks the session as signed in (with a new session id), then
sends the browser on to `next`. A wrong password is reported with
X-Session-Login-Failed, so that sessiongate throttles guessing as it does
on its own login page. A visitor whose session ended is told so: sessiongate
sends X-Session-Expired: 1 (and the redirect here says expired=1).

DEMO ONLY: the accounts are hard-coded in plain text. A real site keeps
password hashes, or lets sessiongate's own login page (login.source =
"users_file") do this job.
"""

import hmac
import os
import sys

# The site directory may be read-only: no __pycache__ next to the pages.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from layout import BASE, esc, form, page, respond, user  # noqa: E402

DEMO_ACCOUNTS = {
    "alice": "wonderland",
    "bob": "builder",
}


def safe_next(target):
    """target when it is a path on this site, else the home page.

    One leading "/", not "//" nor "/\\" (both would leave the site in a
    browser), no control characters, ASCII only.
    """
    if (target.startswith("/") and not target.startswith("//") and "\\" not in target
            and target.isascii() and target.isprintable()):
        return target
    return BASE + "/"


def password_ok(name, password):
    expected = DEMO_ACCOUNTS.get(name)
    # Compare even for unknown names, so the answer takes as long.
    match = hmac.compare_digest((expected or "\0").encode(), password.encode())
    return expected is not None and match


EXPIRED_MESSAGE = "Your session has expired. Please sign in again."


def session_expired(fields):
    """Whether sessiongate says the visitor's session has ended."""
    return os.environ.get("HTTP_X_SESSION_EXPIRED") == "1" or fields.get("expired") == "1"


def login_form(next_path, error="", notice=""):
    parts = []
    if notice:
        parts.append('<p class="notice">%s</p>' % esc(notice))
    if error:
        parts.append('<p class="error">%s</p>' % esc(error))
    name = user()
    if name:
        parts.append("<p>You are already signed in as <b>%s</b>. Sign in again to switch users, "
                     'or <a href="%s/logout.cgi">sign out</a>.</p>' % (esc(name), esc(BASE)))
    parts.append("""<form method="post" action="%(action)s">
<div class="box">
<p><label>User name: <input type="text" name="username" size="20" autofocus></label></p>
<p><label>Password: <input type="password" name="password" size="20"></label></p>
<input type="hidden" name="next" value="%(next)s">
</div>
<input type="submit" value="Sign in">
</form>
<p><small>Demo accounts: <i>alice</i> / <i>wonderland</i>, <i>bob</i> / <i>builder</i>.</small></p>"""
                 % {"action": esc(BASE + "/login.cgi"), "next": esc(next_path)})
    return page("Sign in", "\n".join(parts))


def main():
    fields = form()
    next_path = safe_next(fields.get("next", ""))
    if os.environ.get("REQUEST_METHOD") != "POST":
        notice = EXPIRED_MESSAGE if session_expired(fields) else ""
        return respond([("Cache-Control", "no-store")], login_form(next_path, notice=notice))
    name = fields.get("username", "").strip()
    if not password_ok(name, fields.get("password", "")):
        failed = [("X-Session-Login-Failed", name)] if name and name.isascii() and name.isprintable() else []
        return respond([("Status", "401 Unauthorized"), ("Cache-Control", "no-store")] + failed,
                       login_form(next_path, "Wrong user name or password."))
    respond([("Status", "303 See Other"), ("X-Session-Login", name), ("Location", next_path)],
            '<p>Welcome, %s. <a href="%s">Continue</a>.</p>' % (esc(name), esc(next_path)))


main()
