// The adviser page's heartbeat: the supervisor's board shows "absent" a minute after it stops.
(function () {
  "use strict";
  var me = document.currentScript;
  var token = me ? me.getAttribute("data-csrf") : "";
  function beat() {
    fetch("/presence", {method: "POST", headers: {"X-CSRF-Token": token}, credentials: "same-origin"})
      .catch(function () {});
  }
  beat();
  setInterval(beat, 20000);
})();
