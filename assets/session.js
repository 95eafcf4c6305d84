// sessiongate's expiry warning.
//
// A page includes it with one tag (sessiongate can add it itself, see
// docs/expiry-warning.md):
//
//   <script src="/.sessiongate/session.js" defer></script>
//
// It asks {prefix}/status how long the session has left, and asks again
// only when that time is nearly up. A minute before the session would end
// for inactivity it shows a banner with a "Stay signed in" button, which
// posts {prefix}/keepalive. Asking never extends the session; only the
// button does. Before it warns, and every 20 seconds while the banner
// shows, it asks again, so a keep-alive (or any request) in another tab
// puts the banner away. When the session has ended it says so, with a
// link to sign in again.
(function () {
  "use strict";

  var WARN_BEFORE = 60; // seconds before the end that the banner appears
  var RECHECK = 20; // seconds between questions while it shows

  var script = document.currentScript;
  if (!script || !window.fetch) {
    return;
  }
  var base = script.src.replace(/\/session\.js(?:[?#].*)?$/, "");

  var state = null; // the last answer of /status or /keepalive
  var learnedAt = 0; // when it came, by this browser's clock
  var timer = null;
  var ticker = null;
  var ended = false;
  var ui = null;

  function later(seconds, what) {
    clearTimeout(timer);
    timer = setTimeout(what, Math.max(0, seconds) * 1000);
  }

  // Seconds until the session ends, by the last answer.
  function secondsLeft() {
    var left = state.expires_seconds;
    if (state.idle_seconds !== null && state.idle_seconds < left) {
      left = state.idle_seconds;
    }
    return left - (Date.now() - learnedAt) / 1000;
  }

  // Whether the end is the absolute lifetime, which a keep-alive cannot move.
  function endIsFinal() {
    return state.idle_seconds === null || state.expires_seconds <= state.idle_seconds;
  }

  // GET /status, or POST /keepalive with the session's token. Resolves to
  // the answer, or null when there is no session (401).
  function ask(keep) {
    var headers = { Accept: "application/json" };
    if (keep) {
      headers["X-CSRF-Token"] = state.csrf_token;
    }
    var init = {
      method: keep ? "POST" : "GET",
      credentials: "same-origin",
      cache: "no-store",
      headers: headers
    };
    return fetch(base + (keep ? "/keepalive" : "/status"), init).then(function (r) {
      if (r.status === 401) {
        return null;
      }
      if (!r.ok) {
        throw new Error("sessiongate answered " + r.status);
      }
      return r.json();
    });
  }

  function check() {
    ask(false).then(learn, function () {
      later(RECHECK, check);
    });
  }

  function learn(answer) {
    if (answer === null) {
      // No session: it ended, if this page had one.
      if (state !== null) {
        showEnded();
      }
      return;
    }
    state = answer;
    learnedAt = Date.now();
    if (state.user === null && state.idle_seconds === null) {
      return; // an empty anonymous session: nothing to lose, nothing to say
    }
    var left = secondsLeft();
    if (left > WARN_BEFORE) {
      hideBanner();
      later(left - WARN_BEFORE, check);
    } else {
      showWarning();
      later(Math.min(RECHECK, left + 1), check);
    }
  }

  function keepAlive() {
    ui.button.disabled = true;
    ask(true).then(learn, check).then(function () {
      if (ui) {
        ui.button.disabled = false;
      }
    });
  }

  function style(el, props) {
    for (var name in props) {
      if (Object.prototype.hasOwnProperty.call(props, name)) {
        el.style[name] = props[name];
      }
    }
  }

  function build() {
    var box = document.createElement("div");
    box.className = "sessiongate-expiry";
    box.setAttribute("role", "region");
    box.setAttribute("aria-label", "Session");
    style(box, {
      position: "fixed",
      left: "1rem",
      right: "1rem",
      bottom: "1rem",
      zIndex: "2147483647",
      maxWidth: "32rem",
      margin: "0 auto",
      padding: "0.75rem 1rem",
      background: "#fff8e1",
      color: "#222",
      border: "1px solid #c9a227",
      borderRadius: "6px",
      boxShadow: "0 2px 8px rgba(0,0,0,.2)",
      font: "15px/1.4 system-ui, sans-serif"
    });
    // What screen readers hear: once when the banner appears, once when
    // the session ends (the countdown itself would be noise).
    var spoken = document.createElement("p");
    spoken.setAttribute("role", "alert");
    style(spoken, {
      position: "absolute",
      width: "1px",
      height: "1px",
      overflow: "hidden",
      clip: "rect(0 0 0 0)",
      whiteSpace: "nowrap",
      margin: "0"
    });
    var text = document.createElement("p");
    text.setAttribute("aria-hidden", "true");
    style(text, { margin: "0 0 0.5rem 0" });
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = "Stay signed in";
    button.addEventListener("click", keepAlive);
    var link = document.createElement("a");
    link.textContent = "Sign in again";
    box.appendChild(spoken);
    box.appendChild(text);
    box.appendChild(button);
    box.appendChild(link);
    document.body.appendChild(box);
    return { box: box, spoken: spoken, text: text, button: button, link: link };
  }

  function showWarning() {
    var fresh = ui === null || ui.box.hidden;
    if (ui === null) {
      ui = build();
    }
    ui.box.hidden = false;
    ui.link.hidden = true;
    var final = endIsFinal();
    ui.button.hidden = final;
    if (fresh) {
      ui.spoken.textContent = final
        ? "Your session ends in about a minute. Save your work."
        : "Your session will end in about a minute unless you choose Stay signed in.";
    }
    countdown();
    clearInterval(ticker);
    ticker = setInterval(countdown, 1000);
  }

  // The visible countdown: this browser's clock only, no requests.
  function countdown() {
    var left = Math.max(0, Math.ceil(secondsLeft()));
    if (endIsFinal()) {
      ui.text.textContent = "Your session ends in " + left + " s. Save your work.";
    } else if (state.user === null) {
      ui.text.textContent = "Your session will end in " + left + " s.";
    } else {
      ui.text.textContent = "You will be signed out in " + left + " s.";
    }
  }

  function hideBanner() {
    clearInterval(ticker);
    if (ui !== null && !ended) {
      ui.box.hidden = true;
      ui.spoken.textContent = "";
    }
  }

  function showEnded() {
    if (ended) {
      return;
    }
    ended = true;
    clearTimeout(timer);
    clearInterval(ticker);
    if (ui === null) {
      ui = build();
    }
    var here = location.pathname + location.search;
    var login = state.login;
    var sep = login.indexOf("?") < 0 ? "?" : "&";
    ui.link.href = login + sep + "next=" + encodeURIComponent(here) + "&expired=1";
    ui.link.hidden = false;
    ui.button.hidden = true;
    ui.box.hidden = false;
    var words = state.user !== null ? "You have been signed out." : "Your session has ended.";
    ui.text.textContent = words;
    ui.spoken.textContent = words + " Sign in again to go on.";
  }

  // A tab coming back into view (or a computer waking up) asks again:
  // its timers may have slept.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && state !== null && !ended) {
      check();
    }
  });

  // A page brought back from the back/forward cache has slept too.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && state !== null && !ended) {
      check();
    }
  });

  check();
})();
