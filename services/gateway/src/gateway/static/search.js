// Search across chats: the box in the sidebar, its results in place of the chat list, and
// the found message shown when its chat opens. Snippets arrive as pieces of plain text
// (`{text, match}`): each becomes a text node, the matched ones inside <mark>, so nothing
// a user or the model wrote is ever read as markup.

import { ApiError, api } from "./api.js";

const $ = (id) => document.getElementById(id);
const DEBOUNCE_MS = 250;
const MAX_EARLIER_PAGES = 20; // of 50 messages: a hit up to 1,000 messages back is shown
const KIND = { prompt: "You asked", reply: "Gemini replied", title: "Chat title" };

let seq = 0; // the latest search: older answers are dropped
let timer = 0;
let query = "";
let nextCursor = null;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The address of a hit: its chat, and the message to show there. */
export function hitPath(hit) {
  const room = `/c/${encodeURIComponent(hit.chatroomId)}`;
  return hit.messageId ? `${room}?m=${encodeURIComponent(hit.messageId)}` : room;
}

function hitView(hit) {
  const link = el("a", "search-hit");
  link.href = hitPath(hit);
  link.dataset.kind = hit.kind;
  const head = el("span", "hit-head");
  head.append(el("span", "hit-room", hit.chatroomName), el("span", "hit-kind", KIND[hit.kind] || ""));
  const snippet = el("span", "hit-snippet");
  for (const part of hit.snippet) {
    snippet.append(part.match ? el("mark", "", part.text) : document.createTextNode(part.text));
  }
  link.append(head, snippet);
  const item = el("li", "search-item");
  item.append(link);
  return item;
}

function setSearching(on) {
  $("search-results").hidden = !on;
  $("recent-title").hidden = on;
  $("rooms-nav").hidden = on;
}

async function run(more = false) {
  const mine = ++seq;
  const status = $("search-status");
  status.textContent = more ? "" : "Searching…";
  try {
    const answer = (await api.search(query, more ? nextCursor : null)).data;
    if (mine !== seq) return;
    const views = answer.hits.map(hitView);
    if (more) $("search-list").append(...views);
    else $("search-list").replaceChildren(...views);
    nextCursor = answer.nextCursor;
    const none = !$("search-list").childElementCount;
    status.textContent = none ? `No chats match “${answer.query}”.` : "";
    $("more-results").hidden = !nextCursor;
  } catch (error) {
    if (mine !== seq || (error instanceof ApiError && error.status === 401)) return;
    status.textContent = error.body?.errors?.[0]?.message || error.message;
  }
}

function onInput() {
  clearTimeout(timer);
  query = $("search-input").value.trim();
  if (!query) {
    clearSearch();
    return;
  }
  setSearching(true);
  timer = setTimeout(() => run(), DEBOUNCE_MS);
}

/** Back to the chat list (also when the user signs out: nothing of theirs stays). */
export function clearSearch() {
  clearTimeout(timer);
  seq++;
  query = "";
  nextCursor = null;
  $("search-input").value = "";
  $("search-list").replaceChildren();
  $("search-status").textContent = "";
  $("more-results").hidden = true;
  setSearching(false);
}

/** In the open chat, scroll to and mark the message a search hit named (`?m=`): when it
 * is older than what the chat shows, `loadEarlier()` (true while it adds messages) goes
 * back a page at a time, up to MAX_EARLIER_PAGES. */
export async function revealFound(rowOf, loadEarlier) {
  const id = new URLSearchParams(location.search).get("m");
  if (!id) return;
  for (let page = 0; !rowOf(id) && page < MAX_EARLIER_PAGES; page++) {
    if (!(await loadEarlier())) break;
  }
  const row = rowOf(id);
  if (!row) return;
  row.classList.add("found");
  row.scrollIntoView({ block: "center" });
}

/** Wire the box; `navigate(path)` opens a hit's chat. */
export function initSearch(navigate) {
  const input = $("search-input");
  input.addEventListener("input", onInput);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && input.value) {
      event.preventDefault();
      event.stopPropagation();
      clearSearch();
    }
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    if (query) run();
  });
  $("more-results").addEventListener("click", () => run(true));
  $("search-list").addEventListener("click", (event) => {
    const link = event.target.closest(".search-hit");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    const url = new URL(link.href);
    navigate(url.pathname + url.search);
  });
}
