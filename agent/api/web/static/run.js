// The run page's live log: server-sent events carry rendered, escaped rows (the
// server converts colours and escapes every character); this only inserts them,
// follows the end while the reader is there, and bounds the rows kept in the tab.
"use strict";
(function () {
  var MAX_ROWS = 1000;
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
  var count = document.getElementById("line-count");
  note.textContent = "live";
  var source = new EventSource(url);
  // Rows that arrive within one frame go into the page together: one layout per frame.
  var pending = [];
  var flush = function () {
    var follow = atEnd();
    lines.insertAdjacentHTML("beforeend", pending.join(""));
    pending = [];
    var extra = lines.children.length - MAX_ROWS;
    if (extra > 0) {
      var range = document.createRange();
      range.setStartBefore(lines.firstElementChild);
      range.setEndAfter(lines.children[extra - 1]);
      range.deleteContents();
      // "older lines" now starts above the first row still shown.
      var older = document.getElementById("older");
      var first = lines.firstElementChild;
      var link = first && first.querySelector("a.n");
      if (older && link) {
        var n = Number(first.id.slice(1));
        older.href = link.getAttribute("href")
          .replace(/([?&]at=)\d+/, "$1" + Math.max(1, n - 400))
          .replace(/#L\d+$/, "#L" + Math.max(1, n - 1));
      }
    }
    var empty = document.querySelector(".empty");
    if (empty) empty.remove();
    var last = lines.lastElementChild;
    if (count && last && last.id) count.textContent = Number(last.id.slice(1)).toLocaleString() + " lines";
    if (follow) toEnd();
  };
  source.addEventListener("lines", function (event) {
    if (!pending.length) requestAnimationFrame(flush);
    pending.push(event.data);
  });
  // A reader who did not pick a stage follows the run to the stage that runs now.
  var picked = /[?&]stage=/.test(location.search);
  source.addEventListener("stages", function (event) {
    var stages = document.getElementById("stages");
    if (stages) stages.outerHTML = event.data;
    var running = document.querySelector("#stages .st-in_progress:not(.current)");
    if (!picked && running) { source.close(); location.reload(); }
  });
  source.addEventListener("refused", function (event) {
    source.close();
    note.textContent = event.data + ": reload the page";
  });
  var showStatus = function (status) {
    var badge = document.getElementById("run-status");
    if (badge) {
      badge.textContent = status.replace("_", " ");
      badge.className = "badge st-" + status;
    }
  };
  source.addEventListener("status", function (event) { showStatus(event.data); });
  source.addEventListener("end", function (event) {
    source.close();
    showStatus(event.data);
    note.textContent = "the run has finished";
  });
})();
