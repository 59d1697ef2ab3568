/* The leaderboard site's only script: sortable tables and the index's filters.
 *
 * The pages are complete without it. A table with class "sortable" sorts by a column when its
 * header's button is pressed: numbers (data-sort="num") by the cell's data-v, else by the
 * number its text starts with; text (data-sort="text") case-insensitively. Missing values
 * (no number, empty text) always go last; equal values keep the page's original order. The
 * first press sorts in the header's data-first direction, the next one reverses it, and the
 * header's aria-sort says the current order.
 */
"use strict";

(function () {
  function cellKey(cell, numeric) {
    var raw = cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent;
    return numeric ? parseFloat(raw) : raw.trim().toLowerCase();
  }

  function setUpSortable(table) {
    var body = table.tBodies[0];
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    // The page's order, against which equal values are ordered.
    var rows = Array.prototype.slice.call(body.rows);
    var keys = {};

    function columnKeys(column, numeric) {
      if (!keys[column]) {
        keys[column] = rows.map(function (row) {
          return cellKey(row.cells[column], numeric);
        });
      }
      return keys[column];
    }

    function sortBy(column, direction) {
      var header = headers[column];
      var numeric = header.getAttribute("data-sort") === "num";
      var values = columnKeys(column, numeric);
      var sign = direction === "descending" ? -1 : 1;
      var order = rows.map(function (_, index) {
        return index;
      });
      order.sort(function (a, b) {
        var x = values[a];
        var y = values[b];
        var xMissing = numeric ? isNaN(x) : x === "";
        var yMissing = numeric ? isNaN(y) : y === "";
        if (xMissing !== yMissing) {
          return xMissing ? 1 : -1;
        }
        if (!xMissing && x !== y) {
          return x < y ? -sign : sign;
        }
        return a - b;
      });
      var fragment = document.createDocumentFragment();
      order.forEach(function (index) {
        fragment.appendChild(rows[index]);
      });
      body.appendChild(fragment);
      headers.forEach(function (other) {
        if (other === header) {
          other.setAttribute("aria-sort", direction);
        } else {
          other.removeAttribute("aria-sort");
        }
      });
    }

    headers.forEach(function (header, column) {
      var button = header.querySelector("button");
      if (!button) {
        return;
      }
      button.addEventListener("click", function () {
        var current = header.getAttribute("aria-sort");
        var first = header.getAttribute("data-first") || "ascending";
        var next = current ? (current === "ascending" ? "descending" : "ascending") : first;
        sortBy(column, next);
      });
    });
  }

  function setUpFilters(form) {
    var table = document.getElementById(form.getAttribute("data-table"));
    var typeSelect = form.querySelector("#filter-type");
    var contaminationSelect = form.querySelector("#filter-contamination");
    var status = form.querySelector("#filter-status");
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var style = document.createElement("style");
    document.head.appendChild(style);

    function apply() {
      var type = typeSelect.value;
      var contamination = contaminationSelect.value;
      var rows = Array.prototype.slice.call(table.tBodies[0].rows);
      var shown = 0;
      rows.forEach(function (row) {
        var types = (row.getAttribute("data-types") || "").split(" ");
        var visible =
          (!type || types.indexOf(type) >= 0) &&
          (!contamination || row.getAttribute("data-contamination") === contamination);
        row.hidden = !visible;
        shown += visible ? 1 : 0;
      });
      // Columns of the other task type are hidden by one rule each, not by touching every cell.
      var rules = [];
      headers.forEach(function (header, column) {
        var columnType = header.getAttribute("data-task-type");
        if (type && columnType && columnType !== type) {
          rules.push("#" + table.id + " tr > :nth-child(" + (column + 1) + ") { display: none; }");
        }
      });
      style.textContent = rules.join("\n");
      status.textContent = shown + " of " + rows.length + " models shown";
    }

    typeSelect.addEventListener("change", apply);
    contaminationSelect.addEventListener("change", apply);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
    });
    form.hidden = false;
    if (typeSelect.value || contaminationSelect.value) {
      apply(); // choices the browser restored (back button)
    } else {
      // Nothing to hide: the rows are left untouched, which keeps the first render fast.
      var count = table.tBodies[0].rows.length;
      status.textContent = count + " of " + count + " models shown";
    }
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), setUpSortable);
    Array.prototype.forEach.call(document.querySelectorAll("form.filters"), setUpFilters);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
