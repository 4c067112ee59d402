// The call screen: keeps the claim while the page is open, shows the telephony status, and
// the keyboard shortcuts (digits pick an outcome, Ctrl+Enter saves and opens the next call).
// A static file, no inline script: the console's Content-Security-Policy allows only 'self'.
(function () {
  "use strict";
  var screen = document.getElementById("call-screen");
  if (!screen) { return; }
  var aid = screen.getAttribute("data-action");
  var csrf = screen.getAttribute("data-csrf");
  var status = document.getElementById("call-status");
  var fr = {initiated: "lancement", ringing: "ça sonne", answered: "décroché",
    completed: "terminé", busy: "occupé", "no-answer": "pas de réponse", failed: "échec",
    canceled: "annulé"};

  function poll() {
    fetch("/calls/" + aid + "/telephony").then(function (r) {
      return r.ok ? r.json() : {};
    }).then(function (j) {
      if (!j.status) { return; }
      status.textContent = (fr[j.status] || j.status) +
        (j.duration_s != null ? " (" + j.duration_s + " s)" : "") + (j.error ? " — " + j.error : "");
    }).catch(function () {});
  }
  if (status) { poll(); setInterval(poll, 5000); }

  setInterval(function () {
    fetch("/calls/" + aid + "/renew", {method: "POST", headers: {"X-CSRF-Token": csrf}});
  }, 60000);

  function typing(el) {
    var tag = el && el.tagName;
    return tag === "TEXTAREA" || (tag === "INPUT" && el.type !== "radio" && el.type !== "checkbox");
  }
  document.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      var next = document.getElementById("save-next");
      if (next) { e.preventDefault(); next.click(); }
      return;
    }
    if (e.altKey || e.ctrlKey || e.metaKey || typing(document.activeElement)) { return; }
    if (/^[1-9]$/.test(e.key)) {
      var radio = document.querySelector('input[name="outcome"][data-key="' + e.key + '"]');
      if (radio) { e.preventDefault(); radio.checked = true; radio.focus(); }
    }
  });
  var err = document.getElementById("error");
  var first = document.querySelector('input[name="outcome"]:checked') ||
    document.querySelector('input[name="outcome"]');
  if (err && first) { first.focus(); }
})();
