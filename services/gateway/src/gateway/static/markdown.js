// A small Markdown renderer for model replies. It builds DOM nodes and puts the model's
// text in them only as text (createTextNode / textContent), so any HTML in a reply shows as
// the characters it is made of and never becomes markup. The subset: paragraphs, headings,
// lists (nested, ordered, tight or loose), blockquotes, fenced and indented code, tables,
// rules, `code`, **bold**, *italic*, ~~strike~~, and links — only http(s) URLs become <a>.
// Code blocks are highlighted (highlight.js: spans with text as text) and have Copy code.
// An unfinished construct (a reply still streaming) renders as far as it goes.

import { highlight } from "./highlight.js";

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( {0,12})([-*+]|\d{1,9}[.)])(?:[ \t]+(.*)|[ \t]*$)/;
const INDENTED_CODE = /^(?: {4}|\t)(.*)$/;
const TABLE_DIVIDER = /^ {0,3}\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$/;
const BARE_URL = /^https?:\/\/[^\s<>]*[^\s<>.,:;!?"')\]}*_~]/i;

/** The reply `text` as a DocumentFragment of safe elements. */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  renderBlocks(String(text ?? "").replace(/\r\n?/g, "\n").split("\n"), fragment);
  return fragment;
}

/** A URL for an <a href>: absolute http or https only, else null. */
export function safeUrl(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function el(tag, ...children) {
  const node = document.createElement(tag);
  for (const child of children) node.append(child);
  return node;
}

const isBlank = (line) => line.trim() === "";

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
    isItemStart(line);
}

function isItemStart(line) {
  const m = ITEM.exec(line);
  // A number starts a list only as "1." or "1)" followed by text (not "2024.").
  return m !== null && m[1].length <= 3 && (m[3] !== undefined && m[3] !== "" || !/\d/.test(m[2]));
}

function renderBlocks(lines, parent) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) {
      i++;
      continue;
    }
    let m;
    if ((m = FENCE.exec(line))) {
      const fence = m[1];
      const body = [];
      i++;
      while (i < lines.length && !new RegExp(`^ {0,3}${fence[0]}{${fence.length},}\\s*$`).test(lines[i])) {
        body.push(lines[i++]);
      }
      if (i >= lines.length) {
        // No closing fence (yet: the reply is still streaming).
        while (body.length && isBlank(body[body.length - 1])) body.pop();
      }
      i++;
      parent.append(codeBlock(body.join("\n"), m[2]));
    } else if ((m = HEADING.exec(line))) {
      const heading = el(`h${m[1].length}`);
      renderInline(m[2] ?? "", heading);
      parent.append(heading);
      i++;
    } else if (RULE.test(line)) {
      parent.append(el("hr"));
      i++;
    } else if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && !isBlank(lines[i]) && (m = QUOTE.exec(lines[i]) ?? [null, lines[i]])) {
        inner.push(m[1]);
        i++;
      }
      const quote = el("blockquote");
      renderBlocks(inner, quote);
      parent.append(quote);
    } else if (isItemStart(line)) {
      i = renderList(lines, i, parent);
    } else if (INDENTED_CODE.test(line)) {
      const body = [];
      while (i < lines.length && (INDENTED_CODE.test(lines[i]) || isBlank(lines[i]))) {
        body.push(lines[i].replace(/^(?: {4}|\t)/, ""));
        i++;
      }
      while (body.length && isBlank(body[body.length - 1])) body.pop();
      parent.append(codeBlock(body.join("\n"), ""));
    } else if (isTableStart(lines, i)) {
      i = renderTable(lines, i, parent);
    } else {
      const body = [line];
      i++;
      while (i < lines.length && !isBlank(lines[i]) && !startsBlock(lines[i])) body.push(lines[i++]);
      const paragraph = el("p");
      renderInline(body.map((l) => l.trim()).join("\n"), paragraph);
      parent.append(paragraph);
    }
  }
}

function codeBlock(source, language) {
  const named = /^[\w+#.-]{1,30}$/.test(language);
  const code = el("code", highlight(source, named ? language : ""));
  const head = el("div");
  head.className = "code-head";
  if (named) {
    code.className = `language-${language}`;
    code.dataset.language = language;
    const label = el("span", language);
    label.className = "code-language";
    head.append(label);
  }
  const copy = el("button", "Copy code");
  copy.type = "button";
  copy.className = "copy-code";
  head.append(copy);
  const block = el("div", head, el("pre", code));
  block.className = "code-block";
  return block;
}

function renderList(lines, start, parent) {
  const first = ITEM.exec(lines[start]);
  const ordered = /\d/.test(first[2]);
  const list = el(ordered ? "ol" : "ul");
  if (ordered) {
    const number = parseInt(first[2], 10);
    if (number !== 1) list.start = number;
  }
  const items = [];
  let loose = false;
  let i = start;
  while (i < lines.length) {
    const m = ITEM.exec(lines[i]);
    if (!m || m[1].length > 3 || /\d/.test(m[2]) !== ordered || !isItemStart(lines[i])) break;
    const indent = m[1].length + m[2].length + 1;
    const body = [m[3] ?? ""];
    i++;
    let blankBefore = false;
    while (i < lines.length) {
      const line = lines[i];
      if (isBlank(line)) {
        blankBefore = true;
        body.push("");
        i++;
        continue;
      }
      const leading = line.length - line.trimStart().length;
      if (leading >= Math.min(indent, 4)) {
        body.push(line.slice(Math.min(leading, indent)));
        blankBefore = false;
        i++;
        continue;
      }
      // A lazy continuation of the item's paragraph, unless a new block starts.
      if (!blankBefore && !startsBlock(line)) {
        body.push(line.trim());
        i++;
        continue;
      }
      break;
    }
    while (body.length && isBlank(body[body.length - 1])) body.pop();
    if (blankBefore && i < lines.length && isItemStart(lines[i])) loose = true;
    if (body.some(isBlank)) loose = true;
    items.push(body);
  }
  for (const body of items) {
    const item = el("li");
    const only = body.length > 0 && !body.slice(1).some((l) => isBlank(l) || startsBlock(l));
    if (!loose && only && !startsBlock(body[0])) {
      renderInline(body.map((l) => l.trim()).join("\n"), item);
    } else if (!loose) {
      // Tight: the first paragraph inline, then the nested blocks.
      const firstBlock = [];
      let k = 0;
      while (k < body.length && !isBlank(body[k]) && (k === 0 || !startsBlock(body[k]))) {
        firstBlock.push(body[k++]);
      }
      if (firstBlock.length && !startsBlock(firstBlock[0])) {
        renderInline(firstBlock.map((l) => l.trim()).join("\n"), item);
        renderBlocks(body.slice(k), item);
      } else {
        renderBlocks(body, item);
      }
    } else {
      renderBlocks(body, item);
    }
    list.append(item);
  }
  parent.append(list);
  return i;
}

function splitRow(line) {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
  const cells = [];
  let cell = "";
  for (let k = 0; k < row.length; k++) {
    if (row[k] === "\\" && row[k + 1] === "|") {
      cell += "|";
      k++;
    } else if (row[k] === "|") {
      cells.push(cell.trim());
      cell = "";
    } else {
      cell += row[k];
    }
  }
  cells.push(cell.trim());
  return cells;
}

function isTableStart(lines, i) {
  const divider = lines[i + 1];
  return lines[i].includes("|") && divider !== undefined && divider.includes("|") &&
    TABLE_DIVIDER.test(divider) && splitRow(divider).length === splitRow(lines[i]).length;
}

function renderTable(lines, start, parent) {
  const header = splitRow(lines[start]);
  const aligns = splitRow(lines[start + 1]).map((spec) => {
    const left = spec.startsWith(":");
    const right = spec.endsWith(":");
    return left && right ? "center" : right ? "right" : left ? "left" : "";
  });
  const row = (cells, tag) => {
    const tr = el("tr");
    header.forEach((_, k) => {
      const cell = el(tag);
      if (aligns[k]) cell.className = `align-${aligns[k]}`;
      renderInline(cells[k] ?? "", cell);
      tr.append(cell);
    });
    return tr;
  };
  const thead = el("thead", row(header, "th"));
  const tbody = el("tbody");
  let i = start + 2;
  while (i < lines.length && !isBlank(lines[i]) && lines[i].includes("|")) {
    tbody.append(row(splitRow(lines[i]), "td"));
    i++;
  }
  const table = el("table", thead);
  if (tbody.childNodes.length) table.append(tbody);
  const wrap = el("div", table);
  wrap.className = "table-wrap";
  parent.append(wrap);
  return i;
}

const ESCAPABLE = "\\`*_{}[]()#+-.!|~<>\"'";
const DELIMITERS = [
  ["***", "em strong"],
  ["___", "em strong"],
  ["**", "strong"],
  ["__", "strong"],
  ["~~", "del"],
  ["*", "em"],
  ["_", "em"],
];

/** Inline Markdown in `text`, appended to `parent` as text nodes and safe elements. */
export function renderInline(text, parent) {
  let plain = "";
  const flush = () => {
    if (plain) parent.append(document.createTextNode(plain));
    plain = "";
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\" && i + 1 < text.length && ESCAPABLE.includes(text[i + 1])) {
      plain += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "\n") {
      flush();
      parent.append(el("br"));
      i++;
      continue;
    }
    if (c === "`") {
      const run = /^`+/.exec(text.slice(i))[0];
      const end = text.indexOf(run, i + run.length);
      if (end !== -1 && text[end + run.length] !== "`") {
        flush();
        let code = text.slice(i + run.length, end).replace(/\n/g, " ");
        if (/^ .* $/.test(code)) code = code.slice(1, -1);
        parent.append(el("code", code));
        i = end + run.length;
        continue;
      }
      plain += run;
      i += run.length;
      continue;
    }
    if (c === "[" || (c === "!" && text[i + 1] === "[")) {
      const link = parseLink(text, c === "!" ? i + 1 : i);
      if (link) {
        flush();
        const href = safeUrl(link.url);
        if (href) {
          const a = el("a");
          a.href = href;
          a.target = "_blank";
          a.rel = "noopener noreferrer nofollow";
          renderInline(link.label || link.url, a);
          parent.append(a);
        } else {
          renderInline(link.label, parent); // not an http(s) link: its text only
        }
        i = link.end;
        continue;
      }
    }
    if (c === "<") {
      const auto = /^<(https?:\/\/[^\s<>]+)>/i.exec(text.slice(i));
      if (auto && safeUrl(auto[1])) {
        flush();
        parent.append(linkTo(auto[1]));
        i += auto[0].length;
        continue;
      }
    }
    if ((c === "h" || c === "H") && !/[\w/]/.test(text[i - 1] ?? " ")) {
      const bare = BARE_URL.exec(text.slice(i));
      if (bare && safeUrl(bare[0])) {
        flush();
        parent.append(linkTo(bare[0]));
        i += bare[0].length;
        continue;
      }
    }
    const emphasis = parseEmphasis(text, i);
    if (emphasis) {
      flush();
      const [outer, inner = outer] = emphasis.tag.split(" ").map((tag) => el(tag));
      if (inner !== outer) outer.append(inner);
      renderInline(emphasis.inner, inner);
      parent.append(outer);
      i = emphasis.end;
      continue;
    }
    plain += c;
    i++;
  }
  flush();
}

function linkTo(url) {
  const a = el("a", url);
  a.href = safeUrl(url);
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  return a;
}

function parseLink(text, open) {
  // [label](url "title") with balanced brackets in the label.
  let depth = 0;
  let k = open;
  for (; k < text.length; k++) {
    if (text[k] === "\\") {
      k++;
    } else if (text[k] === "[") {
      depth++;
    } else if (text[k] === "]" && --depth === 0) {
      break;
    }
  }
  if (k >= text.length || text[k + 1] !== "(") return null;
  const m = /^\(\s*<?([^\s()<>]*(?:\([^\s()<>]*\)[^\s()<>]*)*)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/.exec(
    text.slice(k + 1),
  );
  if (!m) return null;
  return { label: text.slice(open + 1, k), url: m[1], end: k + 1 + m[0].length };
}

function parseEmphasis(text, i) {
  for (const [mark, tag] of DELIMITERS) {
    if (!text.startsWith(mark, i)) continue;
    const after = text[i + mark.length];
    if (after === undefined || /\s/.test(after)) continue;
    if (mark[0] === "_" && /[\p{L}\p{N}]/u.test(text[i - 1] ?? "")) continue; // snake_case
    if (mark.length === 1 && text[i + 1] === mark) continue;
    let from = i + mark.length + 1;
    while (from <= text.length) {
      const end = text.indexOf(mark, from);
      if (end === -1) break;
      const before = text[end - 1];
      const next = text[end + mark.length];
      const closes = !/\s/.test(before) &&
        (mark.length > 1 || next !== mark) &&
        (mark[0] !== "_" || !/[\p{L}\p{N}]/u.test(next ?? ""));
      if (closes) return { tag, inner: text.slice(i + mark.length, end), end: end + mark.length };
      from = end + 1;
    }
  }
  return null;
}
