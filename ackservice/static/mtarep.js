/* mtarep ackservice: sortable columns and issue modals. No inline script, no library. */
(function () {
  "use strict";

  function sortValue(cell, type) {
    var raw = cell ? cell.getAttribute("data-sort") || "" : "";
    if (type === "number") {
      var number = parseFloat(raw);
      return isNaN(number) ? -Infinity : number;
    }
    return raw.toLowerCase();
  }

  function sortBy(table, index, header) {
    var type = header.getAttribute("data-type") || "text";
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = sortValue(a.cells[index], type);
      var y = sortValue(b.cells[index], type);
      var order = x < y ? -1 : x > y ? 1 : 0;
      return ascending ? order : -order;
    });
    var headers = table.tHead.rows[0].cells;
    for (var i = 0; i < headers.length; i += 1) {
      headers[i].setAttribute("aria-sort", "none");
    }
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    rows.forEach(function (row) { body.appendChild(row); });
  }

  function setUpSorting(table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (header, index) {
      var button = header.querySelector("button.sort");
      if (button) {
        button.addEventListener("click", function () { sortBy(table, index, header); });
      }
    });
  }

  function openIssue(dialog, href) {
    var body = dialog.querySelector(".modal-body");
    var separator = href.indexOf("?") === -1 ? "?" : "&";
    fetch(href + separator + "fragment=1", {
      credentials: "same-origin",
      headers: { "Accept": "text/html" }
    }).then(function (response) {
      return response.text();
    }).then(function (html) {
      // The fragment is our own server's HTML, escaped there; scripts in it never run.
      body.innerHTML = html;
      if (!dialog.open) { dialog.showModal(); }
    }).catch(function () {
      window.location.href = href;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.getElementById("overview");
    if (table && table.tHead) { setUpSorting(table); }
    var dialog = document.getElementById("issue-modal");
    if (!dialog || typeof dialog.showModal !== "function") { return; }
    document.addEventListener("click", function (event) {
      if (event.defaultPrevented || event.button !== 0 ||
          event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) { return; }
      var link = event.target.closest ? event.target.closest("a.issue-link") : null;
      if (!link || dialog.contains(link)) { return; }
      event.preventDefault();
      openIssue(dialog, link.getAttribute("href"));
    });
  });
}());
