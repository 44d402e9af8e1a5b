// The usage page's chart: size per dataset over time (uPlot), from /api/usage/history.
// A file, not an inline script: the hub's Content-Security-Policy allows scripts from 'self' only.
(async function () {
  const note = document.getElementById("usage-chart-note");
  const data = await (await fetch("/api/usage/history")).json();
  const names = Object.keys(data.series);
  if (!data.times.length) { note.textContent = "No snapshots yet: the server records one a day."; return; }
  const fmt = v => { if (v == null) return "–"; const u = ["B", "kB", "MB", "GB", "TB"]; let i = 0;
    while (Math.abs(v) >= 1000 && i < 4) { v /= 1000; i++; } return (i ? v.toFixed(1) : v.toFixed(0)) + " " + u[i]; };
  const palette = ["#0969da", "#1a7f37", "#cf222e", "#9a6700", "#8250df", "#0a7ea4", "#bf3989", "#57606a"];
  const opts = {
    width: Math.min(1100, document.getElementById("usage-chart").clientWidth || 900), height: 320,
    series: [{}].concat(names.map((n, i) => ({label: n, stroke: palette[i % palette.length], width: 2,
      value: (u, v) => fmt(v)}))),
    axes: [{}, {values: (u, vals) => vals.map(fmt), size: 70}],
  };
  new uPlot(opts, [data.times].concat(names.map(n => data.series[n])), document.getElementById("usage-chart"));
  note.textContent = data.times.length + " snapshots of " + names.length + " datasets";
})();
