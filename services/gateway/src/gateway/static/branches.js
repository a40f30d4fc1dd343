// Branches in a chat: the arrows between the versions of a message (an edited prompt's, a
// regenerated reply's: `siblingIds` from the API), and the form that edits a prompt.
// DOM only; app.js does what a click asks. Text goes in as textContent or a value.

const el = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};

/** "‹ 2 / 3 ›" for a message with other versions, or null. */
export function branchNav(message) {
  const ids = message.siblingIds;
  if (!ids || ids.length < 2) return null;
  const index = ids.indexOf(message.id);
  const nav = el("div", "branch-nav");
  nav.setAttribute("role", "group");
  nav.setAttribute("aria-label", "Versions");
  const step = (delta, label, glyph) => {
    const button = el("button", "branch-step", glyph);
    button.type = "button";
    button.setAttribute("aria-label", label);
    button.dataset.target = ids[index + delta] ?? "";
    button.disabled = !button.dataset.target;
    return button;
  };
  nav.append(
    step(-1, "Previous version", "‹"),
    el("span", "branch-count", `${index + 1} / ${ids.length}`),
    step(1, "Next version", "›"),
  );
  return nav;
}

/** The form that edits prompt `message` in place of its bubble. */
export function editForm(message) {
  const form = el("form", "edit-form");
  const text = el("textarea", "edit-text");
  text.value = message.content;
  text.setAttribute("aria-label", "Edit your message");
  text.rows = Math.min(8, Math.max(2, message.content.split("\n").length));
  const actions = el("div", "edit-actions");
  const cancel = el("button", "chip edit-cancel", "Cancel");
  cancel.type = "button";
  const send = el("button", "chip edit-send", "Send");
  send.type = "submit";
  actions.append(cancel, send);
  form.append(text, actions);
  return form;
}
