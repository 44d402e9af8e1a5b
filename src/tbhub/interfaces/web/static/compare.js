// The compare page's charts (uPlot): metric-vs-step curves of the chosen runs, one chart per tag,
// with TensorBoard's smoothing, a log scale and a legend of the values under the cursor; and the
// per-run scatter charts over time. A file, not an inline script: the CSP allows scripts from 'self' only.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("compare-data").textContent);
  const palette = ["#0969da", "#1a7f37", "#cf222e", "#9a6700", "#8250df", "#0a7ea4", "#bf3989", "#57606a",
    "#fb8500", "#2a9d8f"];
  const dark = matchMedia("(prefers-color-scheme: dark)");
  const charts = [];

  // Axis text, ticks and grid from hub.css's --chart-* tokens (light or dark), read at every draw.
  const token = name => () => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  // Tick labels: as many decimals as the tick spacing needs, more until no two labels are equal
  // (a narrow range printed "0.548" five times).
  function fmt(v, decimals) {
    const a = Math.abs(v);
    if (v !== 0 && (a >= 1e6 || a < 1e-4)) return v.toExponential(Math.max(0, Math.min(6, decimals - 3)));
    return v.toFixed(decimals);
  }
  function tickValues(u, splits, axisIdx, space, incr) {
    let d = incr > 0 ? Math.max(0, -Math.floor(Math.log10(incr) + 1e-9)) : 0;
    for (; d <= 12; d++) {
      const labels = splits.map(v => (v == null ? "" : fmt(v, d)));
      if (new Set(labels).size === labels.length) return labels;
    }
    return splits.map(v => (v == null ? "" : String(v)));
  }
  function axis(extra, numeric) {
    const base = {stroke: token("--chart-text"), grid: {stroke: token("--chart-grid"), width: 1},
      ticks: {stroke: token("--chart-tick"), width: 1}};
    if (numeric !== false) base.values = tickValues;
    return Object.assign(base, extra || {});
  }

  // TensorBoard's smoothing: an exponential moving average, debiased so the start is not pulled to 0.
  function smooth(values, weight) {
    if (!weight) return values.slice();
    const out = new Array(values.length);
    let last = 0, n = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v == null || !isFinite(v)) { out[i] = v; continue; }
      last = last * weight + (1 - weight) * v;
      n++;
      out[i] = last / (1 - Math.pow(weight, n));
    }
    return out;
  }

  function curveChart(fig, tag, runs, controls) {
    const el = fig.querySelector(".curve-chart");
    const lines = runs.filter(r => r.series[tag]);
    if (!lines.length) { el.textContent = "None of these runs has " + tag + "."; el.classList.add("empty"); return; }
    // One x array for all runs (their steps joined), null where a run has no point.
    const joined = uPlot.join(lines.map(r => [r.series[tag].steps, r.series[tag].values]));
    const xs = joined[0], raw = joined.slice(1);
    const build = () => {
      const weight = parseFloat(controls.smoothing.value);
      const log = controls.log.checked;
      const keep = ys => (log ? ys.map(v => (v != null && v > 0 ? v : null)) : ys);
      const series = [{label: "step", value: (u, v) => (v == null ? "–" : v.toLocaleString())}];
      const columns = [xs];
      lines.forEach((r, i) => {
        const colour = palette[i % palette.length];
        series.push({label: r.id, stroke: colour, width: 2, spanGaps: true, points: {show: false},
          value: (u, v) => (v == null ? "–" : fmt(v, 4))});
        columns.push(keep(smooth(raw[i], weight)));
      });
      if (weight > 0) lines.forEach((r, i) => {  // the raw values, faint, behind (not in the legend)
        series.push({label: r.id + " (raw)", class: "raw", stroke: palette[i % palette.length] + "40", width: 1,
          spanGaps: true, points: {show: false}});
        columns.push(keep(raw[i]));
      });
      const width = Math.max(280, Math.min(1100, el.clientWidth || 900));
      const u = new uPlot({
        width: width, height: width < 500 ? 220 : 300,
        series: series,
        scales: {x: {time: false}, y: log ? {distr: 3} : {}},
        axes: [axis(), axis({size: 64})],
        legend: {live: true},
        cursor: {focus: {prox: 24}},
        focus: {alpha: 0.35},
        hooks: {draw: [u => { el.dataset.yticks = JSON.stringify(u.axes[1]._values || []); }]},
      }, columns, el);
      el.dataset.runs = String(lines.length);
      return u;
    };
    let u = build();
    const chart = {redraw: () => u.redraw(false), rebuild: () => { u.destroy(); u = build(); }};
    charts.push(chart);
  }

  function curves() {
    const box = document.getElementById("curves");
    if (!box) return;
    const controls = {smoothing: document.getElementById("smoothing"), log: document.getElementById("log-scale")};
    const shown = document.getElementById("smoothing-value");
    fetch(box.dataset.seriesUrl, {credentials: "same-origin", headers: {accept: "application/json"}})
      .then(r => (r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status))))
      .then(payload => {
        box.querySelectorAll("figure.curve").forEach(fig => curveChart(fig, fig.dataset.tag, payload.runs, controls));
        box.dataset.loaded = "true";
      })
      .catch(err => { box.textContent = "The curves could not be loaded (" + err.message + ")."; });
    let pending = null;
    controls.smoothing.addEventListener("input", () => {
      shown.textContent = parseFloat(controls.smoothing.value).toFixed(2);
      clearTimeout(pending);
      pending = setTimeout(() => charts.forEach(c => c.rebuild()), 60);
    });
    controls.log.addEventListener("change", () => charts.forEach(c => c.rebuild()));
  }

  // Per run, one point at its start: the best value of the first tag, and steps per second.
  function scatter(el, valueOf) {
    if (!el) return;
    const rows = data.rows.filter(r => r.first_wall_time != null);
    const points = rows.map(r => ({x: r.first_wall_time, y: valueOf(r), set: r.endpoint + "/" + r.dataset, r: r}))
      .filter(p => p.y != null && typeof p.y === "number");
    if (!points.length) { el.textContent = "No data yet."; return; }
    const xs = [...new Set(points.map(p => p.x))].sort((a, b) => a - b);
    const sets = [...new Set(points.map(p => p.set))].sort();
    const at = new Map();
    points.forEach(p => at.set(p.set + "@" + p.x, p));
    const series = sets.map(s => xs.map(x => { const p = at.get(s + "@" + x); return p ? p.y : null; }));
    const width = Math.max(280, Math.min(1100, el.clientWidth || 900));
    const u = new uPlot({
      width: width, height: width < 500 ? 220 : 300,
      series: [{}].concat(sets.map((s, i) => ({label: s, stroke: palette[i % palette.length], width: 0,
        points: {show: true, size: 8, fill: palette[i % palette.length]}, paths: () => null}))),
      cursor: {focus: {prox: 24}},
      axes: [axis({}, false), axis({size: 64})],
    }, [xs].concat(series), el);
    charts.push({redraw: () => u.redraw(false), rebuild: () => u.redraw(false)});
    u.over.addEventListener("click", () => {
      const idx = u.cursor.idx;
      if (idx == null) return;
      for (let i = 0; i < sets.length; i++) {
        const p = at.get(sets[i] + "@" + xs[idx]);
        if (p && (u.series[i + 1]._focus || sets.length === 1)) { window.location = p.r.tensorboard; return; }
      }
    });
  }

  curves();
  const tag = data.tags[0];
  const lowerIsBetter = /loss|error|perplexity|wer/i.test(tag || "");
  scatter(document.getElementById("best-chart"), r => {
    const f = r.tags[tag]; if (!f) return null; return lowerIsBetter ? f.min : f.max; });
  scatter(document.getElementById("speed-chart"), r => r.steps_per_s);
  dark.addEventListener("change", () => charts.forEach(c => c.redraw()));
})();
