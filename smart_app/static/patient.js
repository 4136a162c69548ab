// Draws PHQ-9 and GAD-7 over time with Chart.js (vendored) and the severity bands behind them.
(function () {
  "use strict";
  var node = document.getElementById("chart-data");
  var canvas = document.getElementById("scores-chart");
  if (!node || !canvas || typeof Chart === "undefined") { return; }
  var data = JSON.parse(node.textContent);
  var colors = { phq9: "#24425f", gad7: "#c2185b" };
  var labels = { phq9: "PHQ-9", gad7: "GAD-7" };
  var bandColors = ["rgba(46,125,50,.10)", "rgba(251,192,45,.12)", "rgba(245,124,0,.13)",
                    "rgba(211,47,47,.13)", "rgba(136,14,79,.15)"];
  var datasets = Object.keys(labels).filter(function (k) { return data.series[k].length; })
    .map(function (k) {
      return { label: labels[k], borderColor: colors[k], backgroundColor: colors[k], tension: 0,
               data: data.series[k].map(function (p) { return { x: p.date, y: p.total }; }) };
    });
  var bands = data.bands.phq9;
  var bandPlugin = {
    id: "severityBands",
    beforeDatasetsDraw: function (chart) {
      var y = chart.scales.y, area = chart.chartArea, ctx = chart.ctx;
      ctx.save();
      bands.forEach(function (band, i) {
        var top = y.getPixelForValue(Math.min(band[1] + 0.5, y.max));
        var bottom = y.getPixelForValue(Math.max(band[0] - 0.5, y.min));
        ctx.fillStyle = bandColors[i % bandColors.length];
        ctx.fillRect(area.left, top, area.right - area.left, bottom - top);
        ctx.fillStyle = "#556"; ctx.font = "11px system-ui";
        ctx.fillText(band[2], area.right - 110, top + 12);
      });
      ctx.restore();
    }
  };
  var dates = [];
  datasets.forEach(function (d) { d.data.forEach(function (p) { if (dates.indexOf(p.x) < 0) dates.push(p.x); }); });
  dates.sort();
  new Chart(canvas, {
    type: "line",
    data: { labels: dates, datasets: datasets },
    options: { animation: false, maintainAspectRatio: false, parsing: { xAxisKey: "x", yAxisKey: "y" },
               scales: { y: { min: 0, max: 27, title: { display: true, text: "score" } } } },
    plugins: [bandPlugin]
  });
  canvas.setAttribute("data-ready", "1");
})();
