// What an htmx request that failed said, where people see it. htmx swaps nothing on an error status, so
// without this a refused click (a stale form token, say) looks like a click that did nothing.
// One notice for the page (role="alert"), replaced by the next: a poll that keeps failing (the inbox badge,
// every 20 s, while the network is down) does not pile them up. It goes once the request that was refused, or
// after a network failure any request, succeeds.
(() => {
  "use strict";

  const GENERIC = ["操作未完成：服务器出错。请稍后重试；如仍失败，请联系管理员。",
                   "The request failed on the server; retry later, and contact the administrator if it persists."];
  const OFFLINE = ["无法连接服务器，操作未完成。请检查网络连接后重试。",
                   "Could not reach the server; check the network connection and retry."];

  // In the page from the start, empty (and so not shown): screen readers announce what is put into an alert
  // that is already there more surely than an alert added with its text.
  const notice = document.createElement("div");
  notice.className = "notice";
  notice.setAttribute("role", "alert");
  document.body.appendChild(notice);
  let refused = null; // the element whose request was refused; null after a network failure

  // Our JSON error body (README, "Errors") says what went wrong and what to do; anything else (a proxy's
  // error page) says nothing a person can use.
  function said(xhr) {
    try {
      const error = JSON.parse(xhr.responseText).error;
      if (error && error.zh) return [error.zh, error.en || ""];
      if (error && error.message) return [error.message, ""];
    } catch { /* not JSON */ }
    return GENERIC;
  }

  function show([zh, en], from) {
    const parts = [Object.assign(document.createElement("p"), {textContent: zh})];
    if (en) parts.push(Object.assign(document.createElement("p"), {textContent: en, lang: "en", className: "muted"}));
    const close = Object.assign(document.createElement("button"), {type: "button", textContent: "关闭"});
    close.addEventListener("click", clear);
    notice.replaceChildren(...parts, close);
    refused = from;
  }

  function clear() {
    notice.replaceChildren();
    refused = null;
  }

  document.addEventListener("htmx:responseError", (event) => show(said(event.detail.xhr), event.detail.elt));
  document.addEventListener("htmx:sendError", () => show(OFFLINE, null));
  document.addEventListener("htmx:afterRequest", (event) => {
    if (notice.hasChildNodes() && event.detail.successful && (refused === null || refused === event.detail.elt)) {
      clear();
    }
  });
})();
