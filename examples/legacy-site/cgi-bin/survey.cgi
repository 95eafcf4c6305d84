#!/usr/bin/env python3
"""The Great Web Survey: three questions, one page each.

Each answer is stored in the session with X-Session-Set; the page to show is
the first question not answered yet, so the session alone carries the visitor
through. The last page lists the answers and offers to start over, which
answers X-Session-Delete.
"""

import os
import sys
import urllib.parse

# The site directory may be read-only: no __pycache__ next to the pages.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from layout import BASE, esc, form, page, respond, session_data  # noqa: E402

# (session key, question, choices; None for free text)
QUESTIONS = [
    ("survey_browser", "Which browser did you first surf the Web with?",
     ["NCSA Mosaic", "Netscape Navigator", "Internet Explorer", "Lynx", "Something else"]),
    ("survey_modem", "How fast was your first modem?",
     ["2400 baud", "14.4k", "28.8k", "56k", "I had a T1 at work"]),
    ("survey_wish", "What should this site have next?", None),
]
MAX_ANSWER = 200
HERE = BASE + "/survey.cgi"


def see_other(headers):
    """303 back to the survey, with the session headers given."""
    respond([("Status", "303 See Other")] + headers + [("Location", HERE)],
            '<p>Saved. <a href="%s">Continue</a>.</p>' % esc(HERE))


def question_page(index, error=""):
    key, question, choices = QUESTIONS[index]
    parts = ["<p>Question %d of %d</p>" % (index + 1, len(QUESTIONS))]
    if error:
        parts.append('<p class="error">%s</p>' % esc(error))
    parts.append('<form method="post" action="%s"><div class="box">' % esc(HERE))
    parts.append("<p><b>%s</b></p>" % esc(question))
    if choices:
        for choice in choices:
            parts.append('<label><input type="radio" name="answer" value="%s"> %s</label><br>'
                         % (esc(choice), esc(choice)))
    else:
        parts.append('<input type="text" name="answer" size="40" maxlength="%d">' % MAX_ANSWER)
    parts.append('</div><input type="hidden" name="step" value="%d">' % (index + 1))
    parts.append('<input type="submit" value="Next &gt;&gt;"></form>')
    return page("The Great Web Survey", "\n".join(parts))


def results_page(data):
    rows = "\n".join("<tr><th>%s</th><td>%s</td></tr>" % (esc(question), esc(data.get(key, "")))
                     for key, question, _ in QUESTIONS)
    body = """<p>Thank you for taking part! Here is what you told us:</p>
<table>
%s
</table>
<p>These answers live in your session, not in any database.</p>
<form method="post" action="%s">
<input type="hidden" name="action" value="reset">
<input type="submit" value="Start over">
</form>""" % (rows, esc(HERE))
    return page("The Great Web Survey: results", body)


def answer(fields, data):
    """Store one answer, or show its question again with what was wrong."""
    try:
        index = int(fields.get("step", "")) - 1
    except ValueError:
        return see_other([])
    if not 0 <= index < len(QUESTIONS):
        return see_other([])
    key, _, choices = QUESTIONS[index]
    given = fields.get("answer", "").strip()
    if not given:
        error = "Please answer the question."
    elif choices and given not in choices:
        error = "Please pick one of the answers."
    elif len(given) > MAX_ANSWER:
        error = "Please keep it under %d characters." % MAX_ANSWER
    else:
        return see_other([("X-Session-Set", urllib.parse.urlencode({key: given}))])
    return respond([("Status", "400 Bad Request")], question_page(index, error))


def main():
    data = session_data()
    if os.environ.get("REQUEST_METHOD") == "POST":
        fields = form()
        if fields.get("action") == "reset":
            return see_other([("X-Session-Delete", ", ".join(key for key, _, _ in QUESTIONS))])
        return answer(fields, data)
    for index, (key, _, _) in enumerate(QUESTIONS):
        if not data.get(key):
            return respond([], question_page(index))
    return respond([], results_page(data))


main()
