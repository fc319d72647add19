// 规则试算: the form is sent with Ctrl+Enter (Cmd+Enter on a Mac) from any of its fields, as its button says:
// through requestSubmit, so that htmx sends it as it does a click.
document.addEventListener("keydown", (e) => {
  if (e.key !== "Enter" || !(e.ctrlKey || e.metaKey) || e.altKey || e.isComposing) return;
  const form = e.target.closest && e.target.closest("form[data-submit-keys]");
  if (!form) return;
  e.preventDefault();
  form.requestSubmit();
});
