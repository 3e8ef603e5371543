// Sortable tables: a click on a column's title sorts the rows by it (again: the other way).
// Cells may carry their raw value in data-v (numbers, UNIX times); columns whose th says
// data-type="number" compare as numbers. live.js calls atpSortable() again after it replaces
// the page's content, and the column sorted stays sorted. No library, no network.
"use strict";
(function () {
  function value(row, i, numeric) {
    const cell = row.cells[i];
    if (!cell) return numeric ? -Infinity : "";
    const raw = cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent.trim();
    if (!numeric) return raw.toLowerCase();
    const n = parseFloat(raw);
    return Number.isNaN(n) ? -Infinity : n;
  }
  function apply(table, th, index, ascending) {
    const numeric = th.dataset.type === "number";
    for (const other of th.parentElement.children) other.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const body = table.tBodies[0];
    const rows = Array.from(body.rows).filter((r) => !r.querySelector("td.empty"));
    rows.sort((a, b) => {
      const x = value(a, index, numeric), y = value(b, index, numeric);
      const c = x < y ? -1 : x > y ? 1 : 0;
      return ascending ? c : -c;
    });
    for (const r of rows) body.appendChild(r);
  }
  // the sort chosen per table id, kept across live updates
  const chosen = {};
  function setUp() {
    for (const table of document.querySelectorAll("table.sortable")) {
      const ths = table.tHead ? table.tHead.rows[0].cells : [];
      Array.from(ths).forEach((th, index) => {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = th.textContent;
        button.title = "sort by " + th.textContent;
        th.textContent = "";
        th.appendChild(button);
        button.addEventListener("click", () => {
          const ascending = th.getAttribute("aria-sort") !== "ascending";
          chosen[table.id] = [index, ascending];
          apply(table, th, index, ascending);
        });
      });
      const again = chosen[table.id];
      if (again && ths[again[0]]) apply(table, ths[again[0]], again[0], again[1]);
    }
  }
  window.atpSortable = setUp;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUp);
  else setUp();
})();
