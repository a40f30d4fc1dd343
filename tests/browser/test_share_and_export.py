"""Share and export in the web client, in headless Chromium against the whole stack: a
chat shared from its menu, the link copied, opened by someone signed out (the chat as it
was, Markdown rendered, HTML shown as text, no number), revoked (the page says so), and
the chat downloaded as Markdown and as JSON."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from playwright.async_api import expect

pytestmark = pytest.mark.browser

PROMPT = "What is <b>yoga</b>?"


async def read(download) -> str:
    """The text of a finished download."""
    path = Path(await download.path())
    return await asyncio.to_thread(path.read_text, encoding="utf-8")


async def from_menu(person, item: str) -> None:
    await person.page.locator(".room-more").first.click()
    await person.page.get_by_role("menuitem", name=item).click()


async def test_share_a_chat_open_it_signed_out_revoke_it_and_export_it(new_person) -> None:
    person = await new_person(permissions=["clipboard-read", "clipboard-write"])
    page = person.page
    await person.sign_in()
    await person.ask(PROMPT)

    # Share: the dialog makes the link and copies it.
    await from_menu(person, "Share")
    dialog = page.get_by_role("dialog", name="Share chat")
    await expect(dialog).to_contain_text("Anyone with the link can read")
    await dialog.get_by_role("button", name="Create link").click()
    field = dialog.get_by_role("textbox", name="Share link")
    await expect(field).to_have_value(re.compile(r"^http://[^/]+/s/[A-Za-z0-9_-]{43}$"))
    url = await field.input_value()
    await dialog.get_by_role("button", name="Copy link").click()
    await expect(page.get_by_text("Link copied to the clipboard.")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == url
    await person.screenshot("share-dialog")
    await dialog.get_by_role("button", name="Close").click()
    await expect(dialog).to_be_hidden()

    await person.ask("A later question about breathing")

    # Someone signed out opens the link: the chat as it was when shared.
    reader = await new_person()
    shown = await reader.page.goto(url)
    assert shown is not None and shown.status == 200
    shared = reader.page
    await expect(shared.locator(".msg.user .bubble")).to_have_text([PROMPT])
    reply = shared.locator(".msg.model .md")
    await expect(reply).to_have_count(1)
    await expect(reply).to_contain_text(f'Simulated Gemini reply to "{PROMPT}"')
    await expect(reply.locator("p").first).to_be_visible()  # the Markdown, rendered
    await expect(shared.locator(".md b, .bubble b")).to_have_count(0)  # HTML shown as text
    await expect(shared.get_by_text("breathing")).to_have_count(0)
    html = await shared.content()
    assert person.number not in html and person.number[3:] not in html
    await reader.screenshot("shared-chat")

    # Revoked: the link no longer opens the chat.
    await from_menu(person, "Share")
    await dialog.get_by_role("button", name="Revoke link").click()
    await expect(page.get_by_text("Link revoked")).to_be_visible()
    await dialog.get_by_role("button", name="Close").click()
    gone = await shared.reload()
    assert gone is not None and gone.status == 404
    await expect(shared.get_by_role("heading", level=1)).to_have_text("This link doesn't work")
    await expect(shared.locator(".msg")).to_have_count(0)

    # Export: the chat downloads as Markdown, then as JSON.
    async with page.expect_download() as markdown_download:
        await from_menu(person, "Export as Markdown")
    markdown = await markdown_download.value
    assert re.fullmatch(r"[a-z0-9-]+\.md", markdown.suggested_filename)
    text = await read(markdown)
    assert re.findall(r"^## (You|Gemini) · ", text, re.M) == ["You", "Gemini"] * 2
    assert PROMPT in text and "breathing" in text

    async with page.expect_download() as json_download:
        await from_menu(person, "Export as JSON")
    exported = await json_download.value
    assert exported.suggested_filename.endswith(".json")
    body = json.loads(await read(exported))
    assert [m["role"] for m in body["messages"]] == ["USER", "GEMINI"] * 2

    person.console.assert_clean()
    # The revoked link's 404 is the page itself, which Chromium reports.
    reader.console.assert_clean(r"status of 404")
