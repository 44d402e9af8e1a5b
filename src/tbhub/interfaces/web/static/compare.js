// The compare page's charts: one point per run (uPlot). Data comes from #compare-data.
// A file, not an inline script: the hub's Content-Security-Policy allows scripts from 'self' only.
(function () {
  const data = JSON.parse(document.getElementById("compare-data").textContent);
  const tag = data.tags[0];
  const lowerIsBetter = /loss|error|perplexity|wer/i.test(tag);
  const rows = data.rows.filter(r => r.first_wall_time != null);
  const palette = ["#0969da", "#1a7f37", "#cf222e", "#9a6700", "#8250df", "#0a7ea4", "#bf3989", "#57606a"];
  function chart(el, valueOf) {
    const points = rows.map(r => ({x: r.first_wall_time, y: valueOf(r), set: r.endpoint + "/" + r.dataset, r: r}))
      .filter(p => p.y != null && typeof p.y === "number");
    if (!points.length) { el.textContent = "No data yet."; return; }
    const xs = [...new Set(points.map(p => p.x))].sort((a, b) => a - b);
    const sets = [...new Set(points.map(p => p.set))].sort();
    const at = new Map();
    points.forEach(p => at.set(p.set + "@" + p.x, p));
    const series = sets.map(s => xs.map(x => { const p = at.get(s + "@" + x); return p ? p.y : null; }));
    const u = new uPlot({
      width: Math.min(1100, el.clientWidth || 900), height: 300,
      series: [{}].concat(sets.map((s, i) => ({label: s, stroke: palette[i % palette.length], width: 0,
        points: {show: true, size: 8, fill: palette[i % palette.length]}, paths: () => null}))),
      cursor: {focus: {prox: 24}},
      // Axis text, ticks and grid from hub.css's --chart-* tokens (light or dark), read at every draw.
      axes: [0, 1].map(() => {
        const token = name => () => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
        return {stroke: token("--chart-text"), grid: {stroke: token("--chart-grid"), width: 1},
          ticks: {stroke: token("--chart-tick"), width: 1}};
      }),
    }, [xs].concat(series), el);
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => u.redraw(false));
    u.over.addEventListener("click", () => {
      const idx = u.cursor.idx;
      if (idx == null) return;
      for (let i = 0; i < sets.length; i++) {
        const p = at.get(sets[i] + "@" + xs[idx]);
        if (p && (u.series[i + 1]._focus || sets.length === 1)) { window.location = p.r.tensorboard; return; }
      }
    });
  }
  chart(document.getElementById("best-chart"), r => {
    const f = r.tags[tag]; if (!f) return null; return lowerIsBetter ? f.min : f.max; });
  chart(document.getElementById("speed-chart"), r => r.steps_per_s);
})();
