// The shared-chat page (/s/<token>): the gateway sends every text escaped; this renders
// the replies' Markdown as DOM nodes (markdown.js: text stays text, no innerHTML).

import { renderMarkdown } from "./markdown.js";

for (const node of document.querySelectorAll(".shared-text")) {
  node.replaceChildren(renderMarkdown(node.textContent));
  node.classList.remove("shared-text");
}

// Copy code: the block's text to the clipboard; the button says how it went (no toasts here).
document.body.addEventListener("click", async (event) => {
  const button = event.target.closest(".copy-code");
  if (!button) return;
  const code = button.closest(".code-block").querySelector("code");
  try {
    await navigator.clipboard.writeText(code.textContent);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Couldn't copy";
  }
  setTimeout(() => (button.textContent = "Copy code"), 2000);
});
