// The usage page's chart: size per dataset over time (uPlot), from /api/usage/history.
// A file, not an inline script: the hub's Content-Security-Policy allows scripts from 'self' only.
(async function () {
  const note = document.getElementById("usage-chart-note");
  const data = await (await fetch("/api/usage/history")).json();
  const names = Object.keys(data.series);
  if (!data.times.length) { note.textContent = "No snapshots yet: the server records one a day."; return; }
  // Sizes as the table prints them (decimal units, one decimal: "1.5 GB"). Axis ticks get the decimals
  // their spacing needs, so a slowly growing dataset's ticks never all read "1.0 GB".
  const units = ["B", "kB", "MB", "GB", "TB"];
  const unitOf = v => { let i = 0; while (Math.abs(v) >= 1000 && i < 4) { v /= 1000; i++; } return i; };
  const fmt = (v, decimals) => { if (v == null) return "–"; const i = unitOf(v);
    return (v / 1000 ** i).toFixed(i ? (decimals ?? 1) : 0) + " " + units[i]; };
  const ticks = vals => { const step = vals.length > 1 ? Math.abs(vals[1] - vals[0]) : 0;
    return vals.map(v => { const scaled = step / 1000 ** unitOf(v);
      return fmt(v, scaled > 0 ? Math.min(3, Math.max(0, Math.ceil(-Math.log10(scaled) - 1e-9))) : 1); }); };
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
  const palette = ["#0969da", "#1a7f37", "#cf222e", "#9a6700", "#8250df", "#0a7ea4", "#bf3989", "#57606a"];
  // Axis text, ticks and grid from hub.css's --chart-* tokens (light or dark), read at every draw.
  const token = name => () => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const axis = extra => Object.assign({stroke: token("--chart-text"), grid: {stroke: token("--chart-grid"), width: 1},
    ticks: {stroke: token("--chart-tick"), width: 1}}, extra);
  const opts = {
    width: Math.min(1100, document.getElementById("usage-chart").clientWidth || 900), height: 320,
    series: [{}].concat(names.map((n, i) => ({label: n, stroke: palette[i % palette.length], width: 2,
      value: (u, v) => fmt(v)}))),
    axes: [axis({}), axis({values: (u, vals) => ticks(vals), size: 80})],
    scales: {x: xScale(data.times)},
  };
  const u = new uPlot(opts, [data.times].concat(names.map(n => data.series[n])), document.getElementById("usage-chart"));
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => u.redraw(false));
  const plural = (n, word) => n + " " + word + (n === 1 ? "" : "s");
  note.textContent = plural(data.times.length, "snapshot") + " of " + plural(names.length, "dataset");
})();
