// Keyboard shortcuts and small conveniences for the tracker's pages (no inline scripts: CSP).
(function () {
  "use strict";
  document.addEventListener("change", function (e) {
    var el = e.target;
    if (el.matches && el.matches("[data-autosubmit]")) { el.form.submit(); }
  });
  // Alt+digit opens the n-th action; "/" focuses the search box; j/k move between rows.
  document.addEventListener("keydown", function (e) {
    var tag = (e.target.tagName || "").toLowerCase();
    var typing = tag === "input" || tag === "textarea" || tag === "select";
    if (!typing && e.key === "/") {
      var q = document.querySelector("input[name=q]");
      if (q) { e.preventDefault(); q.focus(); }
    }
    if (!typing && (e.key === "j" || e.key === "k")) {
      var rows = Array.prototype.slice.call(document.querySelectorAll("table.list tbody tr a.row-link"));
      if (!rows.length) { return; }
      var i = rows.indexOf(document.activeElement);
      i = e.key === "j" ? Math.min(i + 1, rows.length - 1) : Math.max(i - 1, 0);
      rows[i].focus();
    }
    if (e.altKey && /^[1-9]$/.test(e.key)) {
      var d = document.querySelectorAll(".actions details")[Number(e.key) - 1];
      if (d) { e.preventDefault(); d.open = true; var f = d.querySelector("textarea, input:not([type=hidden]), select"); if (f) { f.focus(); } }
    }
  });
  // Live character count on reply boxes.
  document.addEventListener("input", function (e) {
    var el = e.target;
    if (el.dataset && el.dataset.counter) {
      var out = document.getElementById(el.dataset.counter);
      if (out) { out.textContent = el.value.replace(/\s/g, "").length + " 字"; }
    }
  });
  // The dissatisfied-cause question matters only for "dissatisfied".
  function syncCause() {
    var box = document.getElementById("cause");
    if (!box) { return; }
    var chosen = document.querySelector("input[name=outcome]:checked");
    box.hidden = !(chosen && chosen.value === "dissatisfied");
  }
  document.addEventListener("change", syncCause);
  document.addEventListener("DOMContentLoaded", syncCause);
})();
