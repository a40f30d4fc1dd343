"""Code blocks in replies, in headless Chromium: highlighted by highlight.js into token spans
whose text is the source exactly (HTML in code stays text), while a block is still streaming
too, and copied with Copy code. The simulator's ``[sim:echo]`` makes a reply of a given
Markdown text."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

pytestmark = pytest.mark.browser

# language: (source, every token span as (kind, text), in order).
SAMPLES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "python": (
        "@cache\ndef f(x):\n    return 'a' + 0x1F  # c",
        [
            ("meta", "@cache"),
            ("keyword", "def"),
            ("function", "f"),
            ("keyword", "return"),
            ("string", "'a'"),
            ("number", "0x1F"),
            ("comment", "# c"),
        ],
    ),
    "ts": (
        "const n: number = 1.5; // c\nlet s = `t ${n}`",
        [
            ("keyword", "const"),
            ("number", "1.5"),
            ("comment", "// c"),
            ("keyword", "let"),
            ("string", "`t ${n}`"),
        ],
    ),
    "json": (
        '{"a": [true, null, -2e3, "s"]}',
        [
            ("attr", '"a"'),
            ("literal", "true"),
            ("literal", "null"),
            ("number", "-2e3"),
            ("string", '"s"'),
        ],
    ),
    "bash": (
        "# c\nexport X=\"a\" && echo ${HOME} 'b'",
        [
            ("comment", "# c"),
            ("keyword", "export"),
            ("string", '"a"'),
            ("variable", "${HOME}"),
            ("string", "'b'"),
        ],
    ),
    "sql": (
        "SELECT count(*) FROM t WHERE s = 'it''s' -- c",
        [
            ("keyword", "SELECT"),
            ("function", "count"),
            ("keyword", "FROM"),
            ("keyword", "WHERE"),
            ("string", "'it''s'"),
            ("comment", "-- c"),
        ],
    ),
    "html": (
        '<a href="x">t</a><!-- c -->',
        [
            ("tag", "a"),
            ("attr", "href"),
            ("string", '"x"'),
            ("tag", "a"),
            ("comment", "<!-- c -->"),
        ],
    ),
    "css": (
        "a:hover { color: #fff; /* c */ }",
        [("attr", "color"), ("number", "#fff"), ("comment", "/* c */")],
    ),
    "go": (
        'func main() { fmt.Println("hi", nil) }',
        [
            ("keyword", "func"),
            ("function", "main"),
            ("function", "Println"),
            ("string", '"hi"'),
            ("literal", "nil"),
        ],
    ),
    "rust": (  # a lifetime is not a character
        "fn f(x: &'a str) -> char { 'c' }",
        [("keyword", "fn"), ("function", "f"), ("string", "'c'")],
    ),
    "java": (
        '@Override public void run() { log("s"); }',
        [
            ("meta", "@Override"),
            ("keyword", "public"),
            ("keyword", "void"),
            ("function", "run"),
            ("function", "log"),
            ("string", '"s"'),
        ],
    ),
    "c++": (
        '#include <x.h>\nint main() { return f("%d", 0); }',
        [
            ("meta", "#include"),
            ("keyword", "int"),
            ("function", "main"),
            ("keyword", "return"),
            ("function", "f"),
            ("string", '"%d"'),
            ("number", "0"),
        ],
    ),
    "": (  # no language: the generic one
        "x = 1 # c\nif y: print('q') // d",
        [
            ("number", "1"),
            ("comment", "# c"),
            ("keyword", "if"),
            ("function", "print"),
            ("string", "'q'"),
            ("comment", "// d"),
        ],
    ),
    "text": ("if not 'this' then", []),
    # Unclosed, as while a reply streams: a string or comment runs to the end (or the line's).
    "py": ("s = '''open\nstill", [("string", "'''open\nstill")]),
    "c": ("/* open\nint x", [("comment", "/* open\nint x")]),
    "js": ('x = "open\ny = 2', [("string", '"open'), ("number", "2")]),
    # HTML in code is text in a span, never an element.
    "javascript": (
        "el.title = '<img src=x onerror=alert(1)>'",
        [("string", "'<img src=x onerror=alert(1)>'")],
    ),
}


async def test_highlight_puts_each_language_s_tokens_in_spans_and_keeps_the_text(person) -> None:
    page = person.page
    await page.goto("/")
    results = await page.evaluate(
        """async (samples) => {
            const { highlight } = await import("/static/highlight.js");
            return Object.entries(samples).map(([language, [source]]) => {
                const code = document.createElement("code");
                code.append(highlight(source, language));
                const elements = [...code.querySelectorAll("*")];
                return {
                    language,
                    text: code.textContent,
                    others: elements.filter((e) => e.tagName !== "SPAN").length,
                    tokens: elements.map((e) => [e.className.replace(/^tok-/, ""), e.textContent]),
                };
            });
        }""",
        SAMPLES,
    )
    for result in results:
        language = result["language"]
        source, expected = SAMPLES[language]
        assert result["text"] == source, language
        assert result["others"] == 0, language
        assert [tuple(token) for token in result["tokens"]] == expected, language
    person.console.assert_clean()


CODE = "\n".join(
    [
        "@cache",
        "def greet(name):",
        '    """Say <b>hi</b>."""',
        "    # <img src=x onerror=alert(1)>",
        '    return f"hi {name}" * 2',
    ]
)


async def test_a_code_reply_is_highlighted_as_text_copied_and_highlighted_while_streaming(
    new_person,
) -> None:
    person = await new_person(permissions=["clipboard-read", "clipboard-write"])
    page = person.page
    await person.sign_in()
    await person.ask(f"[sim:echo] Here:\n```python\n{CODE}\n```")
    reply = person.last_reply
    code = reply.locator("pre code")
    await expect(code).to_have_attribute("data-language", "python")
    assert await code.evaluate("(code) => code.textContent") == CODE
    await expect(code.locator(".tok-keyword")).to_have_text(["def", "return"])
    await expect(code.locator(".tok-string")).to_have_text(['"""Say <b>hi</b>."""', 'f"hi {name}"'])
    await expect(code.locator(".tok-comment")).to_have_text(["# <img src=x onerror=alert(1)>"])
    await expect(code.locator(".tok-function")).to_have_text(["greet"])
    await expect(reply.locator(".md img, .md b")).to_have_count(0)  # the HTML is text
    await expect(reply.locator(".code-language")).to_have_text("python")
    await person.screenshot("code-block")

    await reply.get_by_role("button", name="Copy code").click()
    await expect(page.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == CODE

    # The same on the shared chat's page (its own script), where the button says it copied.
    # (The link is made with the client's API module: the share dialog has its own test.)
    path = await page.evaluate(
        """async (room) => {
            const { api } = await import("/static/api.js");
            return (await api.share(room)).data.share.path;
        }""",
        page.url.rsplit("/", 1)[1],
    )
    reader = await new_person(permissions=["clipboard-read", "clipboard-write"])
    await reader.page.goto(path)
    shared = reader.page.locator(".msg.model pre code")
    await expect(shared.locator(".tok-keyword")).to_have_text(["def", "return"])
    assert await shared.evaluate("(code) => code.textContent") == CODE
    await reader.page.get_by_role("button", name="Copy code").click()
    await expect(reader.page.get_by_role("button", name="Copied")).to_be_visible()
    assert await reader.page.evaluate("navigator.clipboard.readText()") == CODE
    reader.console.assert_clean()

    # A block whose fence, and whose string, are not closed yet: the stream stalls after
    # three lines (hang-mid), and they show highlighted while the reply is generated.
    await person.send("[sim:echo] [sim:hang-mid]\n```js\n// so far\nlet s = `<i>open\nx = 1\n```")
    await expect(person.replies).to_have_count(2)
    reply = person.last_reply
    code = reply.locator("pre code")
    await expect(code).to_have_text("// so far\nlet s = `<i>open")
    await expect(reply).to_have_attribute("data-status", "generating")
    await expect(code.locator(".tok-comment")).to_have_text(["// so far"])
    await expect(code.locator(".tok-keyword")).to_have_text(["let"])
    await expect(code.locator(".tok-string")).to_have_text(["`<i>open"])
    await expect(reply.locator(".md i")).to_have_count(0)
    await page.get_by_role("button", name="Stop generating").click()
    await expect(reply).to_have_attribute("data-status", "cancelled")
    await page.reload()
    await expect(person.last_reply.locator("pre code .tok-string")).to_have_text(["`<i>open"])
    person.console.assert_clean()
