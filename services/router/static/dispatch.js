// Dispatch queue: the keyboard drives it. J/K move, 1-3 accept a suggestion, "/" searches units.
(function () {
  const cards = () => Array.from(document.querySelectorAll("#queue .ticket"));
  let index = 0;

  function select(i) {
    const all = cards();
    if (!all.length) return;
    index = Math.max(0, Math.min(i, all.length - 1));
    all.forEach((c, n) => c.classList.toggle("selected", n === index));
    all[index].scrollIntoView({ block: "nearest" });
    all[index].focus({ preventScroll: true });
  }

  function current() { return cards()[index]; }

  function accept(n) {
    const card = current();
    if (!card) return;
    const button = card.querySelector(`button.suggestion[data-key="${n}"]`);
    if (!button) return;
    button.form.requestSubmit(button);
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

  document.addEventListener("keydown", (e) => {
    const typing = e.target.matches("input, textarea, select");
    if (typing) {
      if (e.key === "Escape") { e.target.blur(); current() && current().focus(); }
      return;
    }
    if (e.key === "j" || e.key === "ArrowDown") { select(index + 1); e.preventDefault(); }
    else if (e.key === "k" || e.key === "ArrowUp") { select(index - 1); e.preventDefault(); }
    else if (["1", "2", "3"].includes(e.key)) { accept(e.key); e.preventDefault(); }
    else if (e.key === "/") {
      const card = current();
      if (card) { card.querySelector("input[data-units]").focus(); e.preventDefault(); }
    }
  });

  document.addEventListener("DOMContentLoaded", () => select(0));
})();
