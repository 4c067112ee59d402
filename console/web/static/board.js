// The supervisor's board: refresh the figures every 5 s without reloading the page.
(function () {
  "use strict";
  setInterval(function () {
    fetch("/board/partial", {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (h) {
        var board = document.getElementById("board");
        if (h && board) { board.outerHTML = h; }
      })
      .catch(function () {});
  }, 5000);
})();
