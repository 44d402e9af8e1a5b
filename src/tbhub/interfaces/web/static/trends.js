// The trends page's charts (uPlot): one per measure and dataset, x = the point's week or run start.
// Clicking a point opens its run (a week's point: scrolls to its row, which lists the runs).
// A file, not an inline script: the hub's Content-Security-Policy allows scripts from 'self' only.
(function () {
  const trends = JSON.parse(document.getElementById("trends-data").textContent);
  const token = name => () => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const axis = extra => Object.assign({stroke: token("--chart-text"), grid: {stroke: token("--chart-grid"), width: 1},
    ticks: {stroke: token("--chart-tick"), width: 1}}, extra);
  const fmt = v => (v == null ? "–" : Math.abs(v) >= 1000 ? v.toLocaleString(undefined, {maximumFractionDigits: 0})
    : Number(v.toPrecision(3)).toString());
  // The x scale: with one point (or all at one moment) uPlot ignores a range function and spans
  // 1000 days from it (an axis from 2026 to 2029): fix a day either side. Otherwise a 5 % margin,
  // so that the first and last points are not on the plot's edge.
  const xScale = times => {
    const min = Math.min(...times), max = Math.max(...times);
    if (!times.length) return {time: true};
    if (max - min < 3600) return {time: true, auto: false, min: min - 86400, max: max + 86400};
    const pad = (max - min) * 0.05;
    return {time: true, auto: false, min: min - pad, max: max + pad};
  };
  const charts = [];
  document.querySelectorAll(".trend-chart").forEach(el => {
    const group = Number(el.dataset.group), measure = el.dataset.measure;
    const points = trends[group].points;
    const xs = points.map(p => p.at), ys = points.map(p => p[measure]);
    const open = i => {
      const p = points[i];
      if (!p) return;
      if (p.runs.length === 1) { location.href = p.runs[0].href; return; }
      const row = document.getElementById(`trend-${group}-${i}`);
      if (row) { row.scrollIntoView({block: "center"}); row.classList.add("best"); }
    };
    const opts = {
      width: Math.max(280, Math.min(820, el.clientWidth || 600)), height: 220,
      cursor: {points: {size: 9}},
      legend: {show: true},
      series: [{value: (u, v) => (v == null ? "–" : new Date(v * 1000).toISOString().slice(0, 10))},
        {label: measure.replace(/_/g, " "), stroke: "#0969da", width: 2, spanGaps: true,
         points: {show: true, size: 7, fill: "#0969da"}, value: (u, v) => fmt(v)}],
      axes: [axis({}), axis({values: (u, vals) => vals.map(fmt), size: 60})],
      scales: {x: xScale(xs)},
    };
    const chart = new uPlot(opts, [xs, ys], el);
    chart.over.addEventListener("click", () => { if (chart.cursor.idx != null) open(chart.cursor.idx); });
    chart.over.style.cursor = "pointer";
    charts.push(chart);
  });
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => charts.forEach(c => c.redraw(false)));
})();
