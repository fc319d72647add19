// The dispatch queue is driven by the keyboard: J/K move, 1-3 accept a suggestion, "/" goes to the unit box, Enter
// sends the selected card through 派出 (or goes to its unit box while that is empty). (规则试算's keys: rules.js.)
(function () {
  const cards = () => Array.from(document.querySelectorAll("#queue .ticket"));
  let index = 0;

  function mark(i) {
    const all = cards();
    if (!all.length) return null;
    index = Math.max(0, Math.min(i, all.length - 1));
    all.forEach((c, n) => c.classList.toggle("selected", n === index));
    return all[index];
  }

  function select(i) {
    const card = mark(i);
    if (!card) return;
    card.scrollIntoView({ block: "nearest" });
    card.focus({ preventScroll: true });
  }

  function current() { return cards()[index]; }
  function unitBox(card) { return card.querySelector("input[data-units]"); }

  function accept(n) {
    const card = current();
    if (!card) return;
    const button = card.querySelector(`button.suggestion[data-key="${n}"]`);
    if (!button) return;
    button.form.requestSubmit(button);
  }

  // Through the 派出 button, so only the unit box is sent, never a suggestion's unit.
  function send(card) {
    const form = card.querySelector("form.dispatch");
    form.requestSubmit(form.querySelector("button.primary"));
  }

  let timer = null;
  async function lookup(input) {
    const list = document.getElementById(input.getAttribute("list"));
    const q = input.value.trim();
    if (!q) { list.innerHTML = ""; return; }
    const r = await fetch(`/api/v1/router/units?q=${encodeURIComponent(q)}`, { headers: { Accept: "application/json" } });
    if (!r.ok) return;
    const units = await r.json();
    list.innerHTML = "";
    for (const u of units) {
      const option = document.createElement("option");
      option.value = u.code;
      option.label = u.name;
      option.textContent = u.name;
      list.appendChild(option);
    }
  }

  document.addEventListener("input", (e) => {
    if (!e.target.matches("input[data-units]")) return;
    clearTimeout(timer);
    timer = setTimeout(() => lookup(e.target), 150);
  });

  // Clicking or tabbing into a card selects it, so Esc and Enter act on the card being worked on.
  document.addEventListener("focusin", (e) => {
    const card = e.target.closest && e.target.closest("#queue .ticket");
    if (card) mark(cards().indexOf(card));
  });

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.altKey || e.metaKey) return;  // the browser's and the menu's shortcuts
    if (e.target.matches("input, textarea, select")) {
      // Back to the card, keeping what was typed (a search box would clear it): Enter there then sends it.
      if (e.key === "Escape") { e.preventDefault(); e.target.blur(); current() && current().focus(); }
      // Enter that confirms an input method's candidate (拼音 → 汉字) is not a submission.
      else if (e.key === "Enter" && e.target.matches("input[data-units]") && !e.isComposing && e.keyCode !== 229) {
        send(e.target.closest(".ticket"));
        e.preventDefault();
      }
      return;
    }
    if (e.key === "j" || e.key === "ArrowDown") { select(index + 1); e.preventDefault(); }
    else if (e.key === "k" || e.key === "ArrowUp") { select(index - 1); e.preventDefault(); }
    else if (["1", "2", "3"].includes(e.key)) { accept(e.key); e.preventDefault(); }
    else if (e.key === "/") {
      const card = current();
      if (card) { unitBox(card).focus(); e.preventDefault(); }
    } else if (e.key === "Enter" && !e.target.closest("button, a")) {  // a focused button or link does its own
      const card = current();
      if (!card) return;
      if (unitBox(card).value.trim()) send(card); else unitBox(card).focus();
      e.preventDefault();
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    const all = cards();
    const start = Math.max(0, all.findIndex((c) => c.classList.contains("selected")));
    select(start);
    const card = current();
    const refused = card && card.querySelector('input[data-units][aria-invalid="true"]');
    if (refused) {  // a refused dispatch: straight back to what was typed, to correct it
      refused.focus();
      refused.setSelectionRange(refused.value.length, refused.value.length);
    }
  });
})();
