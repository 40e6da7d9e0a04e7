// The run page's live log: server-sent events carry rendered, escaped rows (the
// server converts colours and escapes every character); this only inserts them,
// follows the end while the reader is there, and bounds the rows kept in the tab.
"use strict";
(function () {
  var MAX_ROWS = 5000;
  var lines = document.getElementById("lines");
  if (!lines) return;
  var atEnd = function () {
    return lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 40;
  };
  var toEnd = function () { lines.scrollTop = lines.scrollHeight; };
  if (!location.hash || location.hash === "#end") toEnd();
  var url = lines.getAttribute("data-live");
  if (!url || !window.EventSource) return;
  var note = document.getElementById("live-note");
  note.textContent = "live";
  var source = new EventSource(url);
  source.addEventListener("lines", function (event) {
    var follow = atEnd();
    lines.insertAdjacentHTML("beforeend", event.data);
    var extra = lines.children.length - MAX_ROWS;
    while (extra-- > 0) lines.removeChild(lines.firstElementChild);
    var empty = document.querySelector(".empty");
    if (empty) empty.remove();
    if (follow) toEnd();
  });
  source.addEventListener("stages", function (event) {
    var stages = document.getElementById("stages");
    if (stages) stages.outerHTML = event.data;
  });
  source.addEventListener("end", function (event) {
    source.close();
    var badge = document.getElementById("run-status");
    if (badge) {
      badge.textContent = event.data.replace("_", " ");
      badge.className = "badge st-" + event.data;
    }
    note.textContent = "the run has finished";
  });
})();
