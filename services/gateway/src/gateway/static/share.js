// The shared-chat page (/s/<token>): the gateway sends every text escaped; this renders
// the replies' Markdown as DOM nodes (markdown.js: text stays text, no innerHTML).

import { renderMarkdown } from "./markdown.js";

for (const node of document.querySelectorAll(".shared-text")) {
  node.replaceChildren(renderMarkdown(node.textContent));
  node.classList.remove("shared-text");
}
