// The run page's live log: server-sent events carry rendered, escaped rows (the
// server converts colours and escapes every character); this only inserts them,
// follows the end while the reader is there, and bounds the rows kept in the tab.
"use strict";
(function () {
  var MAX_ROWS = 1000;
  var FLUSH_MS = 50;
  var lines = document.getElementById("lines");
  if (!lines) return;
  var atEnd = function () {
    return lines.scrollTop + lines.clientHeight >= lines.scrollHeight - 40;
  };
  var toEnd = function () { lines.scrollTop = lines.scrollHeight; };
  // Rows near the end get their real height once laid out (wrapped lines): scroll again.
  var settle = function (frames) {
    toEnd();
    if (frames > 0) requestAnimationFrame(function () { settle(frames - 1); });
  };
  if (!location.hash || location.hash === "#end") settle(3);
  var url = lines.getAttribute("data-live");
  if (!url || !window.EventSource) return;
  var note = document.getElementById("live-note");
  var count = document.getElementById("line-count");
  note.textContent = "live";
  var source = new EventSource(url);
  // Rows that arrive within FLUSH_MS go into the page together, as one chunk: one
  // element added and one layout per flush, and whole chunks leave when the tab
  // holds more than MAX_ROWS rows (the browser frees what it need not lay out again).
  var end = document.getElementById("end");
  var kept = lines.querySelectorAll(".l").length;
  var pending = [];
  var flush = function () {
    var follow = atEnd();
    var chunk = document.createElement("div");
    chunk.className = "chunk";
    chunk.innerHTML = pending.join("");
    pending = [];
    kept += chunk.childElementCount;
    lines.insertBefore(chunk, end);
    // Oldest first; a burst bigger than the bound (a slow tab's flush) sheds its own
    // first rows too.
    var first = lines.firstElementChild;
    while (kept > MAX_ROWS && first) {
      var next = first.nextElementSibling;
      var rows = first.classList.contains("chunk") ? first.childElementCount : 0;
      if (rows && rows <= kept - MAX_ROWS && first !== chunk) {
        lines.removeChild(first);
        kept -= rows;
      } else if (rows) {
        for (var drop = kept - MAX_ROWS; drop > 0; drop--) first.removeChild(first.firstElementChild);
        kept = MAX_ROWS;
      }
      if (first === chunk) break;
      first = next;
    }
    // "older lines" now starts above the first row still shown.
    var older = document.getElementById("older");
    var top = lines.querySelector(".l");
    var link = top && top.querySelector("a.n");
    if (older && link) {
      var n = Number(top.id.slice(1));
      older.href = link.getAttribute("href")
        .replace(/([?&]at=)\d+/, "$1" + Math.max(1, n - 400))
        .replace(/#L\d+$/, "#L" + Math.max(1, n - 1));
    }
    var empty = document.querySelector(".empty");
    if (empty) empty.remove();
    var last = chunk.lastElementChild;
    if (count && last && last.id) count.textContent = Number(last.id.slice(1)).toLocaleString() + " lines";
    if (follow) toEnd();
  };
  source.addEventListener("lines", function (event) {
    if (!pending.length) setTimeout(function () { requestAnimationFrame(flush); }, FLUSH_MS);
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
