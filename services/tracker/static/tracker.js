// Keyboard shortcuts and small conveniences for the tracker's pages (no inline scripts: CSP).
(function () {
  "use strict";
  document.addEventListener("change", function (e) {
    var el = e.target;
    if (el.matches && el.matches("[data-autosubmit]")) { el.form.submit(); }
  });
  // Alt+digit picks the choice with that access key (the visit's outcomes) or else opens the n-th action; "/"
  // focuses the search box; j/k move between rows.
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
    if (e.altKey && !e.ctrlKey && !e.metaKey && /^Digit[1-9]$/.test(e.code)) { altDigit(e, e.code.slice(5)); }
  });
  // Handled here, by the key's place (e.code), so Alt+digit works the same in every browser: Firefox wants
  // Alt+Shift for an access key, and macOS turns Alt+digit into another character.
  function altDigit(e, digit) {
    var choice = Array.prototype.find.call(document.querySelectorAll('[accesskey="' + digit + '"]'),
      function (x) { return x.offsetParent !== null && !x.disabled; });
    if (choice) {
      e.preventDefault();
      if (!choice.checked) { choice.click(); }  // a click, so the cause question follows as it does for the mouse
      choice.focus();
      return;
    }
    var d = document.querySelectorAll(".actions details")[Number(digit) - 1];
    if (!d) { return; }
    e.preventDefault();
    d.open = true;
    var f = d.querySelector("textarea, input:not([type=hidden]), select");
    if (f) { f.focus(); }
  }
  // Live count on reply boxes of what the server counts (domain/replies.py, meaningful_chars): the stock phrases it
  // is given (data-stock) taken out in its order, then everything but letters and digits, in characters (code
  // points, as Python counts them); and the least it accepts (data-min).
  function meaningfulChars(text, stock) {
    stock.forEach(function (phrase) { text = text.split(phrase).join(""); });
    return Array.from(text.replace(/[^\p{L}\p{N}]/gu, "")).length;
  }
  function count(el) {
    var out = document.getElementById(el.dataset.counter);
    if (!out) { return; }
    var stock = [];
    try { stock = JSON.parse(el.dataset.stock || "[]"); } catch (err) { stock = []; }
    var n = meaningfulChars(el.value, stock), least = Number(el.dataset.min || 0);
    out.textContent = "有效字数 " + n + (least ? "（至少 " + least + "）" : "");
    out.classList.toggle("short", least > 0 && n < least);
  }
  document.addEventListener("input", function (e) {
    if (e.target.dataset && e.target.dataset.counter) { count(e.target); }
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-counter]").forEach(count);  // what a refused reply brought back
  });
  // The dissatisfied-cause question matters only for "dissatisfied": then it must be answered; otherwise it is
  // hidden, cleared and disabled, so an answer given before switching outcome is never sent (the server refuses it).
  function syncCause() {
    var box = document.getElementById("cause");
    if (!box) { return; }
    var chosen = document.querySelector("input[name=outcome]:checked");
    var dissatisfied = Boolean(chosen && chosen.value === "dissatisfied");
    box.hidden = !dissatisfied;
    box.querySelectorAll("input[name=department_caused]").forEach(function (radio) {
      radio.required = dissatisfied;
      radio.disabled = !dissatisfied;
      if (!dissatisfied) { radio.checked = false; }
    });
  }
  document.addEventListener("change", syncCause);
  document.addEventListener("DOMContentLoaded", syncCause);

  // A refusal rendered from a form's POST names the page it belongs to: show that address, so reloading or
  // going back lands on the page itself instead of posting the form again.
  document.addEventListener("DOMContentLoaded", function () {
    var here = document.querySelector("[data-page-url]");
    var url = here && here.dataset.pageUrl;
    if (url && url.charAt(0) === "/" && url.charAt(1) !== "/" && location.pathname !== url) {
      history.replaceState(null, "", url);
    }
  });

  // What cannot be undone (退单, 督办, 不同意延期) asks first: a form or submit button with data-confirm opens a
  // modal dialog with that question, its confirm button focused, so Enter confirms and Esc cancels (the
  // browser's own <dialog> keys). Without script the form submits at once, as before.
  var confirmed = null;
  document.addEventListener("submit", function (e) {
    var form = e.target, button = e.submitter;
    if (form === confirmed) { confirmed = null; return; }
    var source = button && button.dataset.confirm ? button : form;
    var question = source.dataset && source.dataset.confirm;
    if (!question) { return; }
    e.preventDefault();
    ask(question, source.dataset.confirmOk || "确定", button, function () {
      confirmed = form;
      if (button) { form.requestSubmit(button); } else { form.requestSubmit(); }
    });
  });

  function ask(question, ok, opener, onOk) {
    var dialog = document.getElementById("confirm-dialog");
    if (!dialog) {
      dialog = document.createElement("dialog");
      dialog.id = "confirm-dialog";
      dialog.className = "confirm";
      dialog.setAttribute("role", "alertdialog");
      dialog.setAttribute("aria-labelledby", "confirm-question");
      dialog.innerHTML = '<form method="dialog"><p id="confirm-question"></p><div class="quick">' +
        '<button value="ok" class="primary"></button><button value="cancel" class="secondary">取消</button></div>' +
        '<p class="muted"><small><span class="kbd">Enter</span> 确认　<span class="kbd">Esc</span> 取消</small></p></form>';
      document.body.appendChild(dialog);
    }
    dialog.querySelector("#confirm-question").textContent = question;
    var yes = dialog.querySelector("button[value=ok]");
    yes.textContent = ok;
    dialog.returnValue = "";
    dialog.onclose = function () {
      if (dialog.returnValue === "ok") { onOk(); } else if (opener) { opener.focus(); }
    };
    dialog.showModal();
    yes.focus();
  }
})();
