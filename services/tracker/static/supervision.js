// 督查室 pages: the live ledger (server-sent events), charts (ECharts), the wall screen, printing.
// No inline scripts (CSP): everything is wired from data- attributes here.
(function () {
  "use strict";
  var PALETTE = ["#c62828", "#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#4e342e", "#546e7a", "#9e9d24"];

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) { throw new Error(url + " " + r.status); }
      return r.json();
    });
  }

  // --- the live ledger -----------------------------------------------------------------
  function liveLedger() {
    var form = document.getElementById("ledger-form");
    if (!form || !window.EventSource) { return; }
    var body = document.getElementById("ledger-rows");
    var badge = document.getElementById("live");
    var busy = false, again = false;
    function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      var checked = {};
      Array.prototype.forEach.call(body.querySelectorAll("input[name=number]:checked"), function (c) { checked[c.value] = true; });
      var known = {};
      Array.prototype.forEach.call(body.querySelectorAll("tr[data-number]"), function (tr) { known[tr.dataset.number] = true; });
      fetch(form.dataset.rows, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
        body.innerHTML = html;
        Array.prototype.forEach.call(body.querySelectorAll("tr[data-number]"), function (tr) {
          if (checked[tr.dataset.number]) { tr.querySelector("input").checked = true; }
          if (!known[tr.dataset.number]) { tr.classList.add("fresh"); }
        });
        var counts = document.getElementById("ledger-counts");
        if (counts) {
          document.getElementById("n-overdue").textContent = counts.dataset.overdue;
          document.getElementById("n-risk").textContent = counts.dataset.risk;
        }
      }).catch(function () {}).then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
    }
    var source = new EventSource(form.dataset.stream);
    source.addEventListener("changed", refresh);
    source.onopen = function () { badge.classList.add("on"); badge.classList.remove("off"); };
    source.onerror = function () { badge.classList.remove("on"); badge.classList.add("off"); };
    var all = document.getElementById("check-all");
    if (all) {
      all.addEventListener("change", function () {
        Array.prototype.forEach.call(body.querySelectorAll("input[name=number]"), function (c) { c.checked = all.checked; });
      });
    }
  }

  // --- charts --------------------------------------------------------------------------
  function chart(el) {
    var c = window.echarts.init(el, null, { renderer: "canvas" });
    window.addEventListener("resize", function () { c.resize(); });
    return c;
  }

  function trendCharts() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-trend]"), function (el) {
      var url = "/api/v1/tracker/supervision/trends?dimension=" + el.dataset.trend + "&days=" + el.dataset.days;
      getJSON(url).then(function (data) {
        var bar = el.dataset.type === "bar";
        chart(el).setOption({
          color: PALETTE, animation: false,
          tooltip: { trigger: "axis" },
          legend: { type: "scroll", top: 0, textStyle: { fontSize: 12 } },
          grid: { left: 40, right: 16, top: 36, bottom: 28 },
          xAxis: { type: "category", data: data.dates.map(function (d) { return d.slice(5); }), axisTick: { show: false } },
          yAxis: { type: "value", minInterval: 1, splitLine: { lineStyle: { color: "#eef2f7" } } },
          series: data.series.map(function (s) {
            return bar ? { name: s.name, type: "bar", stack: "all", data: s.data, barMaxWidth: 18 }
                       : { name: s.name, type: "line", data: s.data, smooth: false, symbol: "none", lineStyle: { width: 2 } };
          })
        });
        el.dataset.ready = "1";
      });
    });
  }

  function rankChart() {
    var el = document.getElementById("rank-chart");
    if (!el) { return; }
    getJSON(el.dataset.src).then(function (data) {
      var units = data.units.filter(function (u) { return u.score !== null; }).slice(0, 15).reverse();
      if (!units.length) { el.textContent = "本期没有参与排名的单位"; el.dataset.ready = "1"; return; }
      el.style.height = Math.max(160, units.length * 26 + 40) + "px";
      chart(el).setOption({
        animation: false, color: ["#c62828"],
        grid: { left: 170, right: 40, top: 10, bottom: 20 },
        tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
        xAxis: { type: "value", max: 100, splitLine: { lineStyle: { color: "#eef2f7" } } },
        yAxis: { type: "category", data: units.map(function (u) { return u.unit_name; }), axisTick: { show: false } },
        series: [{ type: "bar", data: units.map(function (u) { return u.score; }), barMaxWidth: 16,
                   label: { show: true, position: "right", formatter: function (p) { return p.value.toFixed(1); } } }]
      });
      el.dataset.ready = "1";
    });
  }

  // --- the wall screen -------------------------------------------------------------------
  // "2026-11-25 08:18:52" in the system's zone (as the server renders it), whatever zone the screen's browser is in.
  function stamp(when, zone) {
    var parts = {};
    new Intl.DateTimeFormat("en-CA", { timeZone: zone || undefined, hourCycle: "h23", year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" })
      .formatToParts(when).forEach(function (p) { parts[p.type] = p.value; });
    return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute + ":" + parts.second;
  }
  function wall() {
    var el = document.getElementById("wall");
    if (!el) { return; }
    var pie = window.echarts ? chart(document.getElementById("wall-channels")) : null;
    var clock = document.getElementById("wall-time"), skew = null;
    function showTime() {
      if (skew !== null) { clock.textContent = stamp(new Date(Date.now() + skew), clock.dataset.tz); }
    }
    function pct(v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; }
    function draw(o) {
      Array.prototype.forEach.call(el.querySelectorAll("[data-k]"), function (b) { b.textContent = o[b.dataset.k]; });
      Array.prototype.forEach.call(el.querySelectorAll("[data-rate]"), function (b) { b.textContent = pct(o.rates[b.dataset.rate]); });
      skew = Date.parse(o.at) - Date.now();  // the server's clock, which the figures are as of
      showTime();
      if (pie) {
        pie.setOption({
          animation: false, color: PALETTE,
          title: { text: "今日各渠道受理", left: "center", textStyle: { color: "#e3f2fd", fontSize: 18 } },
          tooltip: { trigger: "item" },
          series: [{ type: "pie", radius: ["40%", "68%"], top: 30, data: o.channels,
                     label: { color: "#e3f2fd", formatter: "{b} {c}" } }]
        });
      }
    }
    function tick() { getJSON(el.dataset.src).then(draw).catch(function () {}); }
    tick();
    setInterval(tick, Number(el.dataset.refresh || 30) * 1000);
    setInterval(showTime, 1000);  // the clock runs between refreshes, on the server's time
  }

  document.addEventListener("click", function (e) {
    if (e.target.matches && e.target.matches("[data-print]")) { window.print(); }
  });
  document.addEventListener("DOMContentLoaded", function () {
    liveLedger();
    if (window.echarts) { trendCharts(); rankChart(); }
    wall();
  });
})();
