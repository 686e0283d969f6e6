// Sorting, filtering and chart drawing for the report's pages. Hand-written rather than
// DataTables: this is all the behaviour the pages need, and DataTables would add jQuery and
// ~100 kB to a site that must open from file:// without fetching anything.
"use strict";

function cellValue(row, index, numeric) {
  const cell = row.cells[index];
  if (!cell) return numeric ? NaN : "";
  const raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent.trim();
  return numeric ? parseFloat(raw) : raw.toLowerCase();
}

function sortBy(table, th) {
  const index = th.dataset.index !== undefined ? Number(th.dataset.index) : th.cellIndex;
  const numeric = th.dataset.type === "number";
  const ascending = th.getAttribute("aria-sort") !== "ascending";
  table.querySelectorAll("th[aria-sort]").forEach((h) => h.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = cellValue(a, index, numeric);
    const y = cellValue(b, index, numeric);
    if (numeric) {
      // "not run" (NaN) sorts last in both directions.
      if (isNaN(x) || isNaN(y)) return isNaN(x) - isNaN(y);
      return ascending ? x - y : y - x;
    }
    return ascending ? x.localeCompare(y) : y.localeCompare(x);
  });
  rows.forEach((row) => body.appendChild(row));
}

function applyFilters() {
  const table = document.getElementById("leaderboard");
  if (!table) return;
  const chosen = Array.from(document.querySelectorAll("[data-filter]")).map((s) => [s.dataset.filter, s.value]);
  const needle = (document.getElementById("search").value || "").toLowerCase();
  let shown = 0;
  for (const row of table.tBodies[0].rows) {
    const keep = chosen.every(([key, value]) => !value || row.dataset[key] === value)
      && row.dataset.name.toLowerCase().includes(needle);
    row.hidden = !keep;
    shown += keep ? 1 : 0;
  }
  document.getElementById("shown").textContent = `${shown} of ${table.tBodies[0].rows.length} models shown`;
}

function drawCharts() {
  for (const div of document.querySelectorAll("div.chart")) {
    const spec = JSON.parse(document.getElementById(`${div.id}-spec`).textContent);
    vegaEmbed(div, spec, { actions: false, renderer: "svg" }).catch((err) => console.error(err));
  }
}

document.querySelectorAll("table.sortable").forEach((table) => {
  table.querySelectorAll("thead th:not(.group)").forEach((th) => {
    th.classList.add("clickable");
    th.addEventListener("click", () => sortBy(table, th));
  });
});
document.querySelectorAll("[data-filter], #search").forEach((el) => el.addEventListener("input", applyFilters));
applyFilters();
