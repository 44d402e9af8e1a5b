// Every page's small behaviours (a file: the CSP allows no inline script):
//  - the nav collapses behind a Menu button on narrow screens;
//  - <time datetime> shows relative text ("5 min ago") and the exact local time with its zone on hover;
//  - live regions (data-live, polled by htmx) pause while the tab is hidden and refresh when it is back;
//  - the runs explorer's selection (compare, TensorBoard, clean) survives live refreshes of its rows.
"use strict";
(function () {
  document.documentElement.classList.add("js");

  // -- nav --------------------------------------------------------------------------------------
  function setupNav() {
    var button = document.querySelector(".nav-toggle");
    var nav = document.getElementById("site-nav");
    if (!button || !nav) return;
    button.addEventListener("click", function () {
      var open = nav.classList.toggle("open");
      button.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  // -- times ------------------------------------------------------------------------------------
  var absolute = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
    timeZoneName: "short",
  });
  var relative = typeof Intl.RelativeTimeFormat === "function" ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;
  var STEPS = [[60, "second"], [3600, "minute"], [86400, "hour"], [86400 * 7, "day"], [86400 * 30, "week"],
    [86400 * 365, "month"], [Infinity, "year"]];
  var SIZES = { second: 1, minute: 60, hour: 3600, day: 86400, week: 86400 * 7, month: 86400 * 30, year: 86400 * 365 };

  function ago(seconds) {
    for (var i = 0; i < STEPS.length; i++) {
      if (Math.abs(seconds) < STEPS[i][0]) {
        var unit = STEPS[i][1];
        var n = Math.round(seconds / SIZES[unit]);
        return relative ? relative.format(-n, unit) : n + " " + unit + (n === 1 ? "" : "s") + " ago";
      }
    }
    return "";
  }

  function renderTimes(root) {
    var now = Date.now();
    (root || document).querySelectorAll("time[datetime]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (isNaN(t)) return;
      el.title = absolute.format(new Date(t));
      if (el.hasAttribute("data-relative")) el.textContent = ago((now - t) / 1000);
    });
  }

  // -- wide tables -----------------------------------------------------------------------------------
  // A table box that scrolls sideways must be reachable by keyboard (focusable) to be scrolled.
  function focusableScrolls() {
    document.querySelectorAll(".table-scroll").forEach(function (box) {
      if (!box.hasAttribute("tabindex")) box.setAttribute("tabindex", "0");
    });
  }

  // -- live regions -----------------------------------------------------------------------------
  function setupLive() {
    document.body.addEventListener("htmx:beforeRequest", function (event) {
      var elt = event.detail && event.detail.elt;
      if (document.hidden && elt && elt.closest && elt.closest("[data-live]")) event.preventDefault();
    });
    document.addEventListener("visibilitychange", function () {
      if (document.hidden || !window.htmx) return;
      document.querySelectorAll("[data-live]").forEach(function (el) { window.htmx.trigger(el, "refresh"); });
    });
    // The session ended while the page polled (a live request answers 401): go to the login page, which
    // comes back here after, instead of polling on into the void.
    document.body.addEventListener("htmx:beforeSwap", function (event) {
      var xhr = event.detail && event.detail.xhr;
      if (xhr && xhr.status === 401) {
        event.detail.shouldSwap = false;
        window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
      }
    });
    // A live swap replaces the scrolling table: keep where the reader was.
    var scrolled = null;
    document.body.addEventListener("htmx:beforeSwap", function () {
      var box = document.querySelector(".explorer-scroll");
      scrolled = box ? [box.scrollTop, box.scrollLeft] : null;
    });
    document.body.addEventListener("htmx:afterSwap", function (event) {
      var box = document.querySelector(".explorer-scroll");
      if (box && scrolled) { box.scrollTop = scrolled[0]; box.scrollLeft = scrolled[1]; }
      renderTimes(document);
      focusableScrolls();
      restoreSelection();
    });
  }

  // -- explorer selection -------------------------------------------------------------------------
  // The selection lives for the tab (sessionStorage), so runs picked on one page of the explorer stay
  // picked on the next and go along (as hidden fields) when compare or TensorBoard is pressed.
  var STORE = "tbhub-picked:" + location.pathname;
  var picked = new Set();
  try { JSON.parse(sessionStorage.getItem(STORE) || "[]").forEach(function (v) { picked.add(v); }); } catch (e) { /* none */ }

  function savePicked() {
    try { sessionStorage.setItem(STORE, JSON.stringify(Array.from(picked))); } catch (e) { /* private mode */ }
  }

  function selectionForm() { return document.getElementById("selection"); }

  function boxes() { return document.querySelectorAll('#selection input[name="run"]'); }

  function restoreSelection() {
    boxes().forEach(function (box) { box.checked = picked.has(box.value); });
    updateSelection();
  }

  function updateSelection() {
    var form = selectionForm();
    if (!form) return;
    var values = Array.from(picked);
    var endpoints = new Set(values.map(function (v) { return v.split("/")[0]; }));
    var count = document.getElementById("selected-count");
    if (count) count.textContent = values.length ? values.length + " selected" : "none selected";
    form.querySelectorAll("[data-needs]").forEach(function (button) {
      var need = button.getAttribute("data-needs");
      var ok = need === "two" ? values.length >= 2 : values.length >= 1;
      if (button.hasAttribute("data-one-endpoint") && endpoints.size > 1) ok = false;
      button.disabled = !ok;
    });
    var hint = document.getElementById("tb-hint");
    if (hint) hint.hidden = endpoints.size <= 1;
    var all = document.getElementById("pick-all");
    if (all) {
      var list = Array.from(boxes());
      all.checked = list.length > 0 && list.every(function (b) { return b.checked; });
    }
  }

  function setupSelection() {
    var form = selectionForm();
    if (!form) return;
    restoreSelection();
    form.addEventListener("change", function (event) {
      var box = event.target;
      if (box.id === "pick-all") {
        boxes().forEach(function (b) {
          b.checked = box.checked;
          if (box.checked) picked.add(b.value); else picked.delete(b.value);
        });
      } else if (box.name === "run") {
        if (box.checked) picked.add(box.value); else picked.delete(box.value);
      }
      savePicked();
      updateSelection();
    });
    var clear = document.getElementById("clear-selection");
    if (clear) clear.addEventListener("click", function () {
      picked.clear();
      savePicked();
      restoreSelection();
    });
    // Runs picked on other pages of the explorer go along as hidden fields.
    form.addEventListener("submit", function () {
      form.querySelectorAll("input.carried").forEach(function (el) { el.remove(); });
      var onPage = new Set(Array.from(boxes()).map(function (b) { return b.value; }));
      picked.forEach(function (value) {
        if (onPage.has(value)) return;
        var input = document.createElement("input");
        input.type = "hidden"; input.name = "run"; input.value = value; input.className = "carried";
        form.appendChild(input);
      });
    });
    updateSelection();
  }

  // On a phone the explorer's filters start folded, unless one is set.
  function setupFilters() {
    var box = document.getElementById("filter-box");
    if (box && !box.hasAttribute("data-active") && window.matchMedia("(max-width: 720px)").matches) box.open = false;
  }

  function start() {
    setupNav();
    setupFilters();
    focusableScrolls();
    renderTimes(document);
    setupLive();
    setupSelection();
    window.setInterval(function () { renderTimes(document); }, 30000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
