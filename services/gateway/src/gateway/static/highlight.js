// Syntax highlighting for fenced code blocks, small and our own: one regular expression per
// language family, whose alternatives are the token kinds. The result is text nodes and
// <span class="tok-KIND"> elements whose text is set as text, so the code's textContent is
// the source exactly and nothing in it can become markup. Strings and block comments run to
// the end of the source when unclosed (a reply still streaming), so a half-written block
// highlights as far as it goes. Cheap enough to run on every streamed re-render.

const words = (list) => `\\b(?:${list.trim().split(/\s+/).join("|")})\\b`;
const quoted = (q) => `${q}(?:[^${q}\\\\\\n]|\\\\.)*${q}?`; // to its end or the line's
const END = String.raw`(?![\s\S])`; // the end of the source (`$` is a line's end here)
const BLOCK_COMMENT = String.raw`/\*[\s\S]*?(?:\*/|${END})`;
const LINE_COMMENT = "//.*";
const HASH_COMMENT = String.raw`(?<![\w$#])#.*`;
const NUMBER = String.raw`\b(?:0[xXoObB][\da-fA-F_]+|\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)(?:[a-zA-Z]\w*)?\b`;
const FUNCTION = String.raw`\b[A-Za-z_]\w*(?=\s*\()`;
const C_STRINGS = [quoted('"'), quoted("'")].join("|");

const PYTHON = `
  and as assert async await break class continue def del elif else except finally for from
  global if import in is lambda nonlocal not or pass raise return try while with yield match case`;
const JAVASCRIPT = `
  async await break case catch class const continue debugger default delete do else export
  extends finally for from function get if import in instanceof let new of return set static
  super switch this throw try typeof var void while with yield`;
const TYPESCRIPT = `${JAVASCRIPT} abstract as declare enum implements interface keyof namespace
  private protected public readonly type`;
const GO = `
  break case chan const continue default defer else fallthrough for func go goto if import
  interface map package range return select struct switch type var`;
const RUST = `
  as async await break const continue crate dyn else enum extern fn for if impl in let loop
  match mod move mut pub ref return self Self static struct super trait type unsafe use where
  while`;
const JAVA = `
  abstract assert boolean break byte case catch char class continue default do double else
  enum extends final finally float for if implements import instanceof int interface long
  native new package private protected public record return short static super switch
  synchronized this throw throws try var void volatile while`;
const C = `
  auto bool break case catch char class const constexpr continue default delete do double
  else enum explicit extern float for friend goto if inline int long namespace new operator
  override private protected public register return short signed sizeof static struct switch
  template this throw try typedef typename union unsigned using virtual void volatile while`;
const SHELL = `
  if then else elif fi for while until do done case esac in function return local export
  readonly declare unset break continue exit shift source`;
const SQL = `
  select from where and or not insert into values update set delete create table alter drop
  add column index primary key foreign references join left right inner outer full cross on
  group by order asc desc having limit offset as distinct union all case when then else end
  is null in exists between like ilike returning with begin commit rollback default
  constraint unique check cascade if grant revoke view trigger function language int integer
  bigint smallint text varchar char boolean numeric real timestamp timestamptz date uuid
  serial jsonb json`;
const GENERIC = `
  if else elif for while do return function def fn func class struct enum interface type
  import from export package const let var new try catch except finally throw raise switch
  case break continue in of not and or async await yield static public private void`;
const LITERALS = words("true false null nil None True False undefined NaN");

// Each family: [kind, pattern] alternatives, earlier ones first where two match at one place.
// A C-like family: line and block comments, its keywords, strings, literals, numbers, calls.
const c = (keywords, strings = C_STRINGS, extra = []) => [
  ["comment", `${LINE_COMMENT}|${BLOCK_COMMENT}`],
  ...extra,
  ["string", strings],
  ["keyword", words(keywords)],
  ["literal", LITERALS],
  ["number", NUMBER],
  ["function", FUNCTION],
];
const FAMILIES = {
  python: [
    ["comment", HASH_COMMENT],
    [
      "string",
      String.raw`(?:\b[rRbBfFuU]{1,2})?(?:"""[\s\S]*?(?:"""|${END})|'''[\s\S]*?(?:'''|${END})|${C_STRINGS})`,
    ],
    ["meta", String.raw`^[ \t]*@[\w.]+`],
    ["keyword", words(PYTHON)],
    ["literal", `${LITERALS}|\\bself\\b`],
    ["number", NUMBER],
    ["function", FUNCTION],
  ],
  javascript: c(JAVASCRIPT, `${C_STRINGS}|\`(?:[^\`\\\\]|\\\\.)*\`?`),
  typescript: c(TYPESCRIPT, `${C_STRINGS}|\`(?:[^\`\\\\]|\\\\.)*\`?`),
  go: c(GO, `${quoted('"')}|'(?:\\\\.|[^'\\\\\\n])+'|\`[^\`]*\`?`),
  rust: c(RUST, `${quoted('"')}|'(?:\\\\.|[^'\\\\\\n])'`, [["meta", String.raw`#!?\[[^\]\n]*\]?`]]),
  java: c(JAVA, C_STRINGS, [["meta", String.raw`@\w+`]]),
  c: c(C, C_STRINGS, [["meta", String.raw`^[ \t]*#[ \t]*\w+`]]),
  json: [
    ["attr", `${quoted('"')}(?=\\s*:)`],
    ["string", quoted('"')],
    ["literal", LITERALS],
    ["number", String.raw`-?\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b`],
  ],
  shell: [
    ["comment", HASH_COMMENT],
    ["string", `${quoted('"')}|'[^']*'?`],
    ["variable", String.raw`\$(?:\{[^}\n]*\}?|\w+|[@#?$!*-])`],
    ["keyword", words(SHELL)],
    ["number", NUMBER],
  ],
  sql: [
    ["comment", `--.*|${BLOCK_COMMENT}`],
    ["string", String.raw`'(?:[^']|'')*'?|"[^"\n]*"?`],
    ["keyword", words(SQL)],
    ["literal", words("true false null")],
    ["number", NUMBER],
    ["function", FUNCTION],
  ],
  html: [
    ["comment", String.raw`<!--[\s\S]*?(?:-->|${END})`],
    ["meta", String.raw`<![\w-]+`],
    ["tag", String.raw`(?<=<\/?)[\w:-]+`],
    ["attr", String.raw`[\w:-]+(?=\s*=\s*["'])`],
    ["string", String.raw`"[^"]*"?|'[^']*'?`],
  ],
  css: [
    ["comment", BLOCK_COMMENT],
    ["string", C_STRINGS],
    ["keyword", String.raw`@[\w-]+|!important\b`],
    ["attr", String.raw`(?<![\w-])-{0,2}[a-z][\w-]*(?=\s*:[^:{]*[;}])`],
    ["number", String.raw`#[\da-f]{3,8}\b|-?(?:\d*\.)?\d+(?:%|[a-z]+)?`],
    ["function", String.raw`[\w-]+(?=\()`],
  ],
  generic: c(GENERIC, C_STRINGS, [["comment", HASH_COMMENT]]),
  text: [],
};
const CASELESS = new Set(["sql", "html", "css"]);
const ALIASES = {
  py: "python", python3: "python", js: "javascript", jsx: "javascript", mjs: "javascript",
  node: "javascript", ts: "typescript", tsx: "typescript", golang: "go", rs: "rust",
  kotlin: "java", kt: "java", scala: "java", "c++": "c", cpp: "c", cc: "c", h: "c", hpp: "c",
  cs: "c", csharp: "c", "c#": "c", "objective-c": "c", jsonc: "json", sh: "shell",
  bash: "shell", zsh: "shell", console: "shell", shellscript: "shell", dockerfile: "shell",
  postgres: "sql", postgresql: "sql", mysql: "sql", sqlite: "sql", plsql: "sql", xml: "html",
  svg: "html", xhtml: "html", vue: "html", scss: "css", less: "css", txt: "text",
  plaintext: "text", plain: "text", output: "text", log: "text", md: "text", markdown: "text",
};
const compiled = new Map();

function grammar(language) {
  const key = String(language ?? "").toLowerCase();
  const name = ALIASES[key] ?? key;
  const family = Object.hasOwn(FAMILIES, name) ? name : "generic";
  if (!compiled.has(family)) {
    const rules = FAMILIES[family];
    const pattern = rules.map(([, source]) => `(${source})`).join("|") || "(?!)";
    const flags = CASELESS.has(family) ? "gmi" : "gm";
    compiled.set(family, { kinds: rules.map(([kind]) => kind), regex: new RegExp(pattern, flags) });
  }
  return compiled.get(family);
}

/** `source` as a DocumentFragment of text nodes and token spans, for a <code> element. */
export function highlight(source, language) {
  const fragment = document.createDocumentFragment();
  const { kinds, regex } = grammar(language);
  regex.lastIndex = 0;
  let done = 0;
  let m;
  while ((m = regex.exec(source)) !== null) {
    if (m[0] === "") {
      regex.lastIndex++;
      continue;
    }
    if (m.index > done) fragment.append(document.createTextNode(source.slice(done, m.index)));
    const span = document.createElement("span");
    span.className = `tok-${kinds[m.slice(1).findIndex((group) => group !== undefined)]}`;
    span.textContent = m[0];
    fragment.append(span);
    done = m.index + m[0].length;
  }
  if (done < source.length) fragment.append(document.createTextNode(source.slice(done)));
  return fragment;
}
