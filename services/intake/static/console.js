// 来电登记: the operator's console. Keyboard first; the draft survives reloads and dropped
// connections (localStorage) and is cleared only once intake has answered with a number.
(() => {
  "use strict";
  const root = document.getElementById("console");
  const form = document.getElementById("call");
  if (!root || !form) return;
  const csrf = document.querySelector("meta[name=csrf-token]").content;
  const STATES = JSON.parse(root.dataset.states || "{}");
  // One draft per operator: a colleague who signs in at the same desk must not be handed a caller's details.
  const USER = (document.querySelector("meta[name=jiesu-user]") || {}).content || "";
  const DRAFT_KEY = `jiesu.intake.console.draft:${USER}`;
  try { localStorage.removeItem("jiesu.intake.console.draft"); } catch (e) { /* the unowned draft of older versions */ }
  const $ = (id) => document.getElementById(id);
  const field = (name) => form.elements.namedItem(name);
  let directory = null;
  let categoryNames = {};
  let suggestion = null;
  let draft = { id: null };
  // Look-ups (history, repeats, suggestion) answer late: each keeps only its newest answer, and none made
  // before the form was emptied for the next call (resetForm bumps every counter).
  const asked = { history: 0, repeats: 0, suggest: 0 };
  const ask = (what) => { const n = ++asked[what]; return () => n === asked[what]; };

  const newId = () => {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  };
  const debounce = (fn, ms) => {
    let t;
    const later = (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
    later.cancel = () => clearTimeout(t);
    return later;
  };
  const el = (tag, attrs = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
    }
    for (const c of children) e.append(c);  // text is appended as text: never parsed as HTML
    return e;
  };
  // A probability as a whole percentage; one that rounds to 0 is "<1%" ("0%" would read as impossible).
  const percent = (score) => { const shown = Math.round(score * 100); return shown === 0 && score > 0 ? "<1%" : `${shown}%`; };
  const localTime = (iso) => iso ? new Date(iso).toLocaleString("zh-CN", { hour12: false, year: "numeric",
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" }) : "—";
  const jsonHeaders = { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf };

  // --- draft -----------------------------------------------------------------------------
  function values() {
    const v = {};
    for (const e of form.elements) {
      if (!e.name) continue;
      v[e.name] = e.type === "checkbox" ? e.checked : e.value;
    }
    return v;
  }
  function restoreValues(v) {
    for (const [k, val] of Object.entries(v)) {
      const e = field(k);
      if (!e || e.type === "hidden" && k === "call_id" && !val) continue;
      if (e.type === "checkbox") e.checked = !!val; else e.value = val;
    }
    toggleAnswer();
  }
  const saveDraft = debounce(() => {
    if (!draft.id) draft.id = newId();
    draft.values = values();
    try { localStorage.setItem(DRAFT_KEY, JSON.stringify(draft)); } catch (e) { /* private mode: no draft */ }
  }, 250);
  function loadDraft() {
    let saved = null;
    try { saved = JSON.parse(localStorage.getItem(DRAFT_KEY) || "null"); } catch (e) { saved = null; }
    const callId = root.dataset.callId;
    if (!saved || !saved.values) return;
    if (callId && saved.values.call_id && saved.values.call_id !== callId) return;  // another call's draft
    draft = saved;
    restoreValues(saved.values);
    const note = $("draft-note");
    note.textContent = "已恢复未提交的草稿（断线或刷新前填写的内容）。";
    note.hidden = false;
  }
  function clearDraft() {
    saveDraft.cancel();  // a save still pending from before the answer would bring the draft back
    try { localStorage.removeItem(DRAFT_KEY); } catch (e) { /* ignore */ }
    draft = { id: null };
  }

  // --- directory: districts, streets, categories, units -----------------------------------
  function fillStreets() {
    const select = field("street");
    const keep = select.dataset.want || select.value;
    select.replaceChildren(el("option", { value: "" }, "（未知）"));
    const d = directory && directory.districts.find((x) => x.code === field("district").value);
    if (d) for (const s of d.streets) select.append(el("option", { value: s.code }, s.name));
    select.value = keep;
    if (select.value !== keep) select.value = "";
    delete select.dataset.want;
  }
  async function loadDirectory() {
    const wanted = { district: field("district").value, street: field("street").value, category: field("category").value,
                     suggested_unit: field("suggested_unit").value };
    try {
      const r = await fetch("/api/v1/intake/directory", { headers: { Accept: "application/json" } });
      if (!r.ok) throw new Error(r.status);
      directory = await r.json();
    } catch (e) {
      showErrors(["无法读取区街目录，请刷新页面；仍可登记，地址写入详细地址栏。"]);
      return;
    }
    const district = field("district");
    for (const d of directory.districts) district.append(el("option", { value: d.code }, d.name));
    const category = field("category");
    for (const c of directory.categories) {
      categoryNames[c.code] = c.name;
      const depth = c.code.split(".").length - 1;
      category.append(el("option", { value: c.code }, "\u3000".repeat(depth) + c.name));
    }
    try {
      const r = await fetch("/api/v1/router/units", { headers: { Accept: "application/json" } });
      if (r.ok) for (const u of await r.json()) field("suggested_unit").append(el("option", { value: u.code }, u.name));
    } catch (e) { /* the override stays optional */ }
    const draftValues = (draft.values || {});
    for (const k of Object.keys(wanted)) {
      const v = draftValues[k] || wanted[k];
      if (v) field(k).value = v;
    }
    field("street").dataset.want = draftValues.street || wanted.street;
    fillStreets();
  }

  // --- caller history and repeats ---------------------------------------------------------
  // A number as typed (139-0000-1111, ＋86 139…) is the same caller's: compared and sent as digits (and +), as
  // jiesu.text.plain_phone makes it: NFKC (full-width digits, ＋ and brackets), every dash (Unicode Pd, the minus
  // sign, the long-vowel mark ー) a hyphen, then Python's whitespace (\s), hyphens and brackets taken out.
  const plainPhone = (text) => text.normalize("NFKC").replace(/[\p{Pd}\u2212\u30fc]/gu, "-")
    .replace(/[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000()-]/g, "");
  const phone = () => plainPhone(field("phone").value);
  async function loadHistory() {
    const body = $("history-body");
    const p = phone();
    const current = ask("history");
    if (p.length < 5) { body.replaceChildren("输入来电号码后显示。"); body.className = "muted"; return; }
    let data;
    try {
      const r = await fetch(`/api/v1/tracker/tickets?phone=${encodeURIComponent(p)}&limit=10`,
                            { headers: { Accept: "application/json" } });
      if (!r.ok) throw new Error(r.status);
      data = await r.json();
    } catch (e) { if (current()) body.replaceChildren("历史工单暂时无法读取。"); return; }
    if (!current()) return;
    body.className = "";
    if (!data.items.length) { body.replaceChildren(el("p", { class: "muted" }, "该号码没有历史工单（首次来电）。")); return; }
    const rows = data.items.map((t) => el("tr", { class: t.overdue ? "late" : "" },
      el("td", {}, el("a", { href: `/tracker/tickets/${t.number}` }, t.number)),
      el("td", {}, el("span", { class: "tag" }, STATES[t.state] || t.state)),
      el("td", { class: "subject" }, t.subject),
      el("td", {}, (t.overdue ? "已超期 " : "") + localTime(t.reply_due))));
    body.replaceChildren(el("p", { class: "muted" }, `共 ${data.total} 件`),
      el("div", { class: "table-scroll" }, el("table", { class: "history" }, el("thead", {}, el("tr", {},
        el("th", {}, "编号"), el("th", {}, "状态"), el("th", {}, "标题"), el("th", {}, "答复期限"))),
        el("tbody", {}, ...rows))));
  }
  async function checkRepeats() {
    const box = $("repeat");
    const p = phone();
    const subject = field("subject").value, description = field("description").value;
    const current = ask("repeats");
    if (p.length < 5 || (subject + description).trim().length < 4) { box.hidden = true; return; }
    let data;
    try {
      const r = await fetch("/api/v1/intake/similar", { method: "POST", headers: jsonHeaders,
        body: JSON.stringify({ phone: p, subject, description }) });
      if (!r.ok) throw new Error(r.status);
      data = await r.json();
    } catch (e) { return; }
    if (!current()) return;
    if (!data.items.length) { box.hidden = true; return; }
    const t = data.items[0];
    const button = el("button", { type: "button", accessKey: "m", class: "attach" }, "并入此工单（重复件）");
    button.append(" ", el("u", {}, "M"));
    button.addEventListener("click", () => submit({ duplicate_of_number: t.number }));
    $("repeat-list").replaceChildren(
      el("p", {}, "该来电人 30 天内有未办结的相似工单：", el("strong", {}, t.number), `（${t.state_label}，相似度 ${Math.round(t.similarity * 100)}%）`),
      el("p", { class: "quote" }, t.subject), button);
    box.hidden = false;
  }

  // --- routing suggestion -----------------------------------------------------------------
  async function suggest() {
    const subject = field("subject").value, description = field("description").value;
    const body = $("suggestion-body");
    const current = ask("suggest");
    if ((subject + description).trim().length < 4) return;
    let d;
    try {
      const r = await fetch("/api/v1/router/suggest", { method: "POST", headers: jsonHeaders, body: JSON.stringify({
        subject, description, kind: field("kind").value, channel: "hotline",
        district: field("district").value || null, street: field("street").value || null }) });
      if (!r.ok) throw new Error(r.status);
      d = await r.json();
    } catch (e) { if (current()) body.replaceChildren("暂时无法给出建议。"); return; }
    if (!current()) return;
    suggestion = d;
    const score = d.reason && d.reason.score != null ? percent(d.reason.score) : null;
    const how = d.reason && d.reason.method === "rule" ? `规则 ${d.reason.rule_id}` : (score ? `模型置信度 ${score}` : "");
    body.className = "";
    body.replaceChildren(el("dl", { class: "facts" },
      el("dt", {}, "分类"), el("dd", { id: "suggested-category" }, d.category ? (categoryNames[d.category] || d.category) : "—"),
      el("dt", {}, "承办单位"), el("dd", { id: "suggested-unit" }, d.lead ? d.lead.name : "待派单员判断"),
      el("dt", {}, "依据"), el("dd", {}, how || (d.why || "—"), d.outcome === "dispatch" ? "（置信度不足，将由派单员确认）" : "")));
    const candidates = (d.suggestions || []).slice(0, 3);
    if (candidates.length) {
      body.append(el("p", { class: "muted" }, "候选：" + candidates.map((c) =>
        `${c.unit.name}${c.category ? "·" + (categoryNames[c.category] || c.category) : ""} ${percent(c.score)}`).join("；")));
    }
    $("accept-suggestion").hidden = !(d.category || d.lead);
  }
  function acceptSuggestion() {
    if (!suggestion) return;
    if (suggestion.category) field("category").value = suggestion.category;
    field("suggested_unit").value = "";  // accepted: the router routes it as suggested; choosing a unit overrides
    field("category_source").value = "suggestion";
    const body = $("suggestion-body");
    body.querySelector(".accepted")?.remove();
    body.append(el("p", { class: "accepted" }, "✓ 已采用建议"));
    saveDraft();
    field("category").focus();
  }

  // --- submit -----------------------------------------------------------------------------
  // The errors are listed above the form and each one also stands beside its field (`fields[i]` is the field of
  // `messages[i]`), which names it to a screen reader (aria-describedby) when the focus lands there.
  function showErrors(messages, fields = []) {
    const box = $("form-errors");
    for (const e of form.querySelectorAll("[aria-invalid]")) {
      e.removeAttribute("aria-invalid");
      e.removeAttribute("aria-describedby");
    }
    for (const e of form.querySelectorAll(".field-error")) e.remove();
    if (!messages.length) { box.hidden = true; return; }
    box.replaceChildren(el("ul", {}, ...messages.map((m) => el("li", {}, m))));
    box.hidden = false;
    const names = { "citizen.phone": "phone", "citizen.name": "name", "location.address": "address",
                    "location.district": "district", "location.street": "street", duplicate_of_number: "direct" };
    let first = null;
    fields.forEach((f, i) => {
      const e = field(names[f] || f);
      if (!e || e.type === "hidden") return;
      e.setAttribute("aria-invalid", "true");
      if (messages[i] && !e.getAttribute("aria-describedby")) {
        const note = el("small", { class: "field-error", id: `error-${e.id}` }, messages[i]);
        (e.closest("label") || e.parentElement).append(note);
        e.setAttribute("aria-describedby", note.id);
      }
      first = first || e;
    });
    (first || box).focus();
  }
  function payload(extra) {
    const v = values();
    const body = {
      kind: v.kind, urgency: v.urgency, subject: v.subject, description: v.description,
      citizen: { name: v.name, phone: plainPhone(v.phone), confidential: v.confidential },
      location: { district: v.district || null, street: v.street || null, address: v.address },
      category: v.category || null, suggested_unit: v.suggested_unit || null,
    };
    if (v.call_id) body.source_ref = v.call_id;
    if (v.direct) body.answer = v.answer;
    return Object.assign(body, extra || {});
  }
  let sending = false;
  // While intake answers, what is typed would not be in the ticket and would be cleared with the form:
  // the fields take no input until the answer (or the error) is in.
  function lock(on) {
    form.setAttribute("aria-busy", on ? "true" : "false");
    for (const e of form.elements) {
      if (e.matches("input:not([type=hidden]):not([type=checkbox]), textarea")) e.readOnly = on;
      else if (e.matches("select, input[type=checkbox]")) e.disabled = on;
    }
    const button = $("submit");
    button.disabled = on;
    if (on) { button.dataset.label = button.innerHTML; button.textContent = "提交中…"; }
    else if (button.dataset.label) button.innerHTML = button.dataset.label;  // its own markup (the Ctrl+Enter keys)
  }
  async function submit(extra) {
    if (sending) return;
    if (!draft.id) draft.id = newId();
    saveDraft();
    sending = true;
    const headers = Object.assign({}, jsonHeaders);
    if (!field("call_id").value) headers["Idempotency-Key"] = `console-${draft.id}`;
    const body = JSON.stringify(payload(extra));
    lock(true);
    let r, data;
    try {
      r = await fetch("/api/v1/intake/tickets", { method: "POST", headers, body });
      data = await r.json();
    } catch (e) {
      lock(false);
      showErrors(["网络中断，未能提交。草稿已保存，请再按 Ctrl+Enter 重试（不会重复登记）。"]);
      return;
    } finally {
      sending = false;
    }
    lock(false);
    if (!r.ok) {
      // The last caller's number must not stand beside this caller's error: it could be read back by mistake.
      $("result").hidden = true;
      const err = data.error || {};
      const fields = err.fields || [];
      const labels = { subject: "标题", description: "诉求内容", "citizen.phone": "来电号码", "citizen.name": "姓名",
                       answer: "答复内容", kind: "类型", duplicate_of_number: "重复件",
                       "location.district": "区", "location.street": "街道/乡镇", category: "类别" };
      const say = (f) => f.type === "missing" && labels[f.field] ? `请填写${labels[f.field]}`  // left empty: 必填
        : `${labels[f.field] || f.field}：${f.zh}`;
      showErrors(fields.length ? fields.map(say) : [err.zh || "提交失败"], fields.map((f) => f.field));
      return;
    }
    done(data, extra);
  }
  // Read back one character at a time, a pause between groups: "1 2 3 4 5，2 0 2 6 …".
  const readBack = (text) => text.split("-").map((p) => p.split("").join(" ")).join("，");
  function done(receipt, extra) {
    clearDraft();
    showErrors([]);
    const n = receipt.number;
    $("result-number").textContent = n;
    $("result-readback").textContent = "请复述：" + readBack(n);
    // 查询码: without it a caller who gave no phone number could never look the ticket up.
    const code = receipt.query_code ? `${receipt.query_code.slice(0, 4)}-${receipt.query_code.slice(4)}` : "";
    $("result-query-code").textContent = code;
    $("result-query-readback").textContent = code ? "请复述：" + readBack(code) : "";
    $("result-query").hidden = !code;  // tickets from before query codes have none
    $("result-note").textContent = (extra && extra.duplicate_of_number) ? `已作为重复件并入 ${extra.duplicate_of_number}`
      : field("direct").checked ? "已直接办结，不派单。" : (receipt.duplicate_request ? "此来电已登记过，编号不变。" : "已受理，正在派单。");
    $("result").hidden = false;
    resetForm();
    // Where the number is below the fold (a phone's width), it is shown: the operator reads it back now.
    $("result").scrollIntoView({ block: "nearest" });
  }
  function resetForm() {
    // The page was opened for one caller: the next call starts empty, not with that caller's number.
    for (const name of ["phone", "call_id"]) { field(name).defaultValue = ""; }
    for (const what of Object.keys(asked)) asked[what] += 1;  // answers to the last caller's look-ups are void
    form.reset();
    root.dataset.callId = "";
    field("category_source").value = "";
    toggleAnswer();
    fillStreets();
    $("repeat").hidden = true;
    $("draft-note").hidden = true;
    $("accept-suggestion").hidden = true;
    suggestion = null;
    $("suggestion-body").replaceChildren("输入标题和内容后显示建议的分类和承办单位。");
    $("suggestion-body").className = "muted";
    $("history-body").replaceChildren("输入来电号码后显示。");
    $("history-body").className = "muted";
    if (location.search) history.replaceState(null, "", location.pathname);
    counts();
    field("phone").focus({ preventScroll: true });
  }
  function toggleAnswer() {
    const on = field("direct").checked;
    $("answer-box").hidden = !on;
    field("answer").required = on;
  }
  function counts() {
    for (const c of form.querySelectorAll(".count")) {
      const e = $(c.dataset.for);
      c.textContent = `${e.value.length}/${e.maxLength}`;
    }
  }

  // --- wiring -----------------------------------------------------------------------------
  const later = { repeats: debounce(checkRepeats, 500), suggest: debounce(suggest, 600), history: debounce(loadHistory, 400) };
  form.addEventListener("input", (e) => {
    if (e.target.getAttribute("aria-invalid")) {  // being put right: its own refusal goes (the list stays until the next try)
      document.getElementById(e.target.getAttribute("aria-describedby") || "")?.remove();
      e.target.removeAttribute("aria-invalid");
      e.target.removeAttribute("aria-describedby");
    }
    saveDraft();
    counts();
    if (["phone"].includes(e.target.name)) { later.history(); later.repeats(); }
    if (["subject", "description"].includes(e.target.name)) { later.repeats(); later.suggest(); }
  });
  form.addEventListener("change", (e) => {
    saveDraft();
    if (e.target.name === "district") { fillStreets(); later.suggest(); }
    if (["street", "kind"].includes(e.target.name)) later.suggest();
    if (e.target.name === "direct") toggleAnswer();
  });
  // Enter and Ctrl+Enter alike go to intake, whose refusals name each field in Chinese: not the browser's own bubble.
  form.noValidate = true;
  form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });
  form.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); }
  });
  // Alt+letter jumps to the field (or presses the button) with that accesskey. Handled here so it
  // works the same in every browser (Firefox wants Alt+Shift, some set-ups none) and never
  // reaches the browser's own menus.
  document.addEventListener("keydown", (e) => {
    if (!e.altKey || e.ctrlKey || e.metaKey || !/^Key[A-Z]$/.test(e.code)) return;
    const key = e.code.slice(3).toLowerCase();
    const target = Array.from(document.querySelectorAll(`[accesskey="${key}"]`))
      .find((x) => x.offsetParent !== null && !x.disabled);
    if (!target) return;
    e.preventDefault();
    if (target.matches("button, a, input[type=checkbox]")) { target.focus(); target.click(); }
    else if (target.matches("section")) (target.querySelector("a[href]") || target).focus();  // a list: its first entry
    else target.focus();
  });
  $("accept-suggestion").addEventListener("click", acceptSuggestion);
  $("clear").addEventListener("click", () => { clearDraft(); resetForm(); $("result").hidden = true; });

  // The page's own normalisation, for the browser test that holds it to jiesu.text.plain_phone.
  window.jiesuConsole = Object.freeze({ plainPhone });

  loadDraft();
  toggleAnswer();
  counts();
  loadDirectory().then(() => { if (phone()) { loadHistory(); checkRepeats(); } suggest(); });
  field("phone").focus();
  if (field("phone").value) field("name").focus();  // the number is known: start with the name
})();
