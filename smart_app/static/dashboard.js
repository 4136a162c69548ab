// The dashboard's charts: one bar chart per metric, from the JSON the page carries beside each
// canvas (the same table the CSV holds). No inline script: the app's CSP allows 'self' only.
(function () {
  "use strict";
  var printButton = document.getElementById("print-page");
  if (printButton) { printButton.addEventListener("click", function () { window.print(); }); }
  if (typeof Chart === "undefined") { return; }
  var palette = ["#24425f", "#c2185b", "#2e7d32", "#f57c00"];
  var charts = [];
  document.querySelectorAll("canvas[data-metric]").forEach(function (canvas) {
    var node = document.getElementById("data-" + canvas.getAttribute("data-metric"));
    if (!node) { return; }
    var metric = JSON.parse(node.textContent);
    var labels = metric.rows.map(function (row) { return String(row[0]); });
    var datasets = metric.series.map(function (column, i) {
      return {
        label: metric.columns[column],
        backgroundColor: palette[i % palette.length],
        data: metric.rows.map(function (row) { return row[column] === null ? null : row[column]; })
      };
    });
    var y = { beginAtZero: true };
    if (metric.percent) { y.max = 100; }
    charts.push(new Chart(canvas, {
      type: "bar",
      data: { labels: labels, datasets: datasets },
      options: { animation: false, maintainAspectRatio: false, scales: { y: y },
                 plugins: { legend: { display: datasets.length > 1 } } }
    }));
  });
  // Printed pages are narrower than the screen: redraw at the print size.
  window.addEventListener("beforeprint", function () { charts.forEach(function (c) { c.resize(); }); });
  document.documentElement.setAttribute("data-charts", String(charts.length));
})();
