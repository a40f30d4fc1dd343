"""A person using the web client in headless Chromium, against the whole stack: sign in
with the development OTP, chat with streamed replies, stop, regenerate, reach the Basic
limit, upgrade through the Stripe simulator's checkout page, log out. Each test asserts
what is on screen, and that the page logged no errors."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from playwright.async_api import expect

pytestmark = pytest.mark.browser


async def reply_lengths_while_streaming(person, timeout: float = 20) -> list[int]:
    """The reply's visible text length, sampled until it completes: each new length once."""
    lengths: list[int] = []
    reply = person.last_reply
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await reply.get_attribute("data-status")
        length = len(await reply.locator(".md").inner_text())
        if not lengths or length != lengths[-1]:
            lengths.append(length)
        if status == "completed":
            return lengths
    raise AssertionError(f"the reply did not complete within {timeout} s; saw {lengths}")


async def test_sign_in_chat_with_a_streamed_reply_rename_delete_and_log_out(
    person, basic_limit
) -> None:
    page = person.page
    await page.goto("/")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await person.screenshot("login")
    await person.sign_in()
    await expect(
        page.get_by_text(f"{basic_limit} of {basic_limit} prompts left today")
    ).to_be_visible()
    await expect(page.get_by_text("Your chats will appear here.")).to_be_visible()

    # A new chat: the first prompt creates the room; the reply streams in, token by token.
    await person.send("What is yoga?")
    await expect(page.locator(".msg.user .bubble")).to_have_text(["What is yoga?"])
    await expect(page.get_by_role("button", name="Stop generating")).to_be_visible()
    lengths = await reply_lengths_while_streaming(person)
    growing = [n for n in lengths if n > 0]
    assert len(growing) >= 4, f"the reply did not grow in steps: {lengths}"
    assert growing == sorted(growing), lengths
    reply = person.last_reply
    await expect(reply.locator(".md")).to_contain_text('Simulated Gemini reply to "What is yoga?"')
    await expect(page.get_by_role("button", name="Send message")).to_be_visible()
    await expect(reply.get_by_role("button", name="Regenerate")).to_be_enabled()
    left = basic_limit - 1
    await expect(page.get_by_text(f"{left} of {basic_limit} prompts left today")).to_be_visible()
    assert re.fullmatch(r".*/c/[0-9a-f-]{36}", page.url)

    # The room is in the list, and gets its automatic title after the first reply.
    room = page.locator(".room-item")
    await expect(room).to_have_count(1)
    await expect(room.locator(".room-link")).to_have_text("What is yoga", timeout=20_000)
    await expect(page.get_by_role("heading", level=1)).to_have_text("What is yoga")

    # A follow-up: the model gets the conversation; only the last reply offers Regenerate.
    follow_up = await person.ask("How do I start?")
    assert 'you said: "What is yoga?"' in follow_up
    await expect(page.get_by_role("button", name="Regenerate")).to_have_count(1)
    await expect(person.last_reply.get_by_role("button", name="Regenerate")).to_be_visible()
    left = basic_limit - 2
    await expect(page.get_by_text(f"{left} of {basic_limit} prompt")).to_be_visible()
    await person.screenshot("chat")

    # It is all still there after a reload.
    await page.reload()
    await expect(page.locator(".msg.user .bubble")).to_have_text(
        ["What is yoga?", "How do I start?"]
    )
    await expect(person.replies).to_have_count(2)
    await expect(person.last_reply.locator(".md")).to_have_text(follow_up)

    # Rename, from the room's menu, with the keyboard.
    await page.get_by_role("button", name="Options for What is yoga").click()
    await page.get_by_role("menuitem", name="Rename").click()
    name = page.get_by_role("textbox", name="Chat name")
    await expect(name).to_be_focused()
    await name.fill("Yoga notes")
    await name.press("Enter")
    await expect(room.locator(".room-link")).to_have_text("Yoga notes")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Yoga notes")
    await page.reload()
    await expect(room.locator(".room-link")).to_have_text("Yoga notes")

    # Delete it: the list is empty and the home screen shows.
    await page.get_by_role("button", name="Options for Yoga notes").click()
    await page.get_by_role("menuitem", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete chat?")
    await expect(dialog).to_contain_text("Yoga notes")
    await dialog.get_by_role("button", name="Delete").click()
    await expect(room).to_have_count(0)
    await expect(page.get_by_text("How can I help you today?")).to_be_visible()
    assert page.url.endswith("/")

    # Log out: back at sign in, and a reload does not bring the session back.
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert await page.evaluate("localStorage.getItem('gemini.token')") is None
    await page.reload()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    person.console.assert_clean()


async def test_regenerate_the_last_reply_then_stop_a_long_one(person) -> None:
    page = person.page
    await person.sign_in()
    await person.ask("Name three rivers")
    first_id = await person.last_reply.get_attribute("data-id")

    # Regenerate: a new reply to the same prompt streams in place of the old one.
    await person.last_reply.get_by_role("button", name="Regenerate").click()
    await expect(person.last_reply).not_to_have_attribute("data-id", first_id or "")
    await expect(page.get_by_role("button", name="Stop generating")).to_be_visible()
    await person.until_reply_final()
    await expect(person.replies).to_have_count(1)
    await expect(person.last_reply.locator(".md")).to_contain_text("Name three rivers")
    new_id = await person.last_reply.get_attribute("data-id")
    await page.reload()
    await expect(person.replies).to_have_count(1)  # the superseded reply is not shown
    await expect(person.last_reply).to_have_attribute("data-id", new_id or "")

    # A long, slow reply: stop it part way; the text so far stays, marked as stopped.
    await person.send("[sim:long] [sim:slow] Tell me a long story")
    await expect(person.replies).to_have_count(2)
    text = person.last_reply.locator(".md")
    await expect(text).to_contain_text("Simulated Gemini reply", timeout=20_000)
    stop = page.get_by_role("button", name="Stop generating")
    await stop.click()
    await expect(person.last_reply).to_have_attribute("data-status", "cancelled")
    await expect(person.last_reply).to_contain_text("You stopped this response.")
    await expect(page.get_by_role("button", name="Send message")).to_be_visible()
    await expect(stop).to_be_hidden()
    stopped = await text.inner_text()
    assert 0 < len(stopped.split()) < 100, stopped  # a long reply is 200 words
    await asyncio.sleep(1.5)
    assert await text.inner_text() == stopped  # nothing more arrives
    await page.reload()
    await expect(person.last_reply).to_have_attribute("data-status", "cancelled")
    await expect(person.last_reply.locator(".md")).to_have_text(stopped)
    person.console.assert_clean()


async def test_reach_the_basic_limit_upgrade_through_checkout_and_keep_chatting(
    person, basic_limit
) -> None:
    page = person.page
    await person.sign_in()
    for n in range(basic_limit):
        await person.ask(f"Prompt number {n + 1}")
    # Basic's model answered, and Basic has no other to choose.
    await expect(person.last_reply.locator(".msg-model")).to_have_text("gemini-2.5-flash")
    picker = page.get_by_role("combobox", name="Model for this chat")
    await expect(picker).to_be_disabled()
    await expect(picker).to_have_value("")

    # At the limit: a clear message with the reset time, an Upgrade button, no sending.
    banner = page.get_by_role("alert").filter(has_text="You've reached today's limit")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text(f"You've used all {basic_limit} prompts")
    await expect(banner).to_contain_text(re.compile(r"send more (tomorrow )?at \d{1,2}:\d{2}"))
    await expect(person.prompt).to_be_disabled()
    await expect(page.get_by_role("button", name="Send message")).to_be_disabled()
    await expect(person.last_reply.get_by_role("button", name="Regenerate")).to_be_disabled()
    await person.screenshot("limit-reached")

    # Upgrade: Checkout (the Stripe simulator's page), Pay, back to the success page.
    await banner.get_by_role("button", name="Upgrade to Pro").click()
    await page.wait_for_url(re.compile(r"^http://localhost:\d+/"))
    await expect(page.get_by_role("heading", name="Subscribe")).to_be_visible()
    await person.screenshot("checkout")
    await page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    await page.wait_for_url(re.compile(r"/success\?session_id="))
    await expect(page.get_by_role("heading", name="You're on Pro")).to_be_visible(timeout=30_000)
    await expect(page.get_by_text("Unlimited prompts, starting now.")).to_be_visible()
    await person.screenshot("upgraded")

    await page.get_by_role("button", name="Start chatting").click()
    await expect(page.locator(".topbar").get_by_text("PRO", exact=True)).to_be_visible()
    await expect(page.get_by_text("Pro · unlimited prompts")).to_be_visible()
    await expect(page.get_by_role("button", name="Upgrade")).to_be_hidden()
    await expect(banner).to_be_hidden()
    await expect(person.prompt).to_be_enabled()

    # More prompts than the Basic limit, in the same room.
    await page.locator(".room-link").first.click()
    await expect(person.replies).to_have_count(basic_limit)
    for n in range(basic_limit + 1):
        reply = await person.ask(f"Pro prompt {n + 1}")
        assert f"Pro prompt {n + 1}" in reply
    await expect(person.replies).to_have_count(2 * basic_limit + 1)
    # Pro's own model answered; this chat may choose Basic's instead, for its next prompts.
    await expect(person.last_reply.locator(".msg-model")).to_have_text("gemini-2.5-pro")
    await expect(picker).to_be_enabled()
    await picker.select_option("gemini-2.5-flash")
    await expect(page.get_by_text("This chat now uses gemini-2.5-flash.")).to_be_visible()
    await person.ask("Which model now?")
    await expect(person.last_reply.locator(".msg-model")).to_have_text("gemini-2.5-flash")
    await page.reload()
    await expect(picker).to_have_value("gemini-2.5-flash")

    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    person.console.assert_clean()


async def test_cancelled_checkout_returns_to_basic(person) -> None:
    page = person.page
    await person.sign_in()
    await page.get_by_role("button", name="Upgrade", exact=True).click()
    await expect(page.get_by_role("heading", name="Subscribe")).to_be_visible()
    await page.get_by_role("link", name="Cancel").click()
    await page.wait_for_url(re.compile(r"/cancel$"))
    await expect(page.get_by_role("heading", name="Checkout cancelled")).to_be_visible()
    await page.get_by_role("button", name="Back to chat").click()
    await expect(page.get_by_role("button", name="Upgrade", exact=True)).to_be_visible()
    person.console.assert_clean()


async def test_on_a_phone_sized_screen_sign_in_send_and_switch_chats(phone_person) -> None:
    person = phone_person
    page = person.page
    await person.sign_in()
    sidebar = page.get_by_role("complementary", name="Chats")
    await expect(sidebar).to_be_hidden()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page scrolls sideways: {width} px"

    # Markdown in the prompt comes back quoted in the reply: rendered, HTML left as text.
    await person.prompt.fill("Is **this** <b>bold</b>?")
    await page.get_by_role("button", name="Send message").tap()
    await person.until_reply_final()
    reply = person.last_reply.locator(".md")
    await expect(reply.locator("strong")).to_have_text("this")
    await expect(reply).to_contain_text("<b>bold</b>")
    await expect(reply.locator("b")).to_have_count(0)
    await person.screenshot("phone-chat")

    # The menu opens the chat list as a drawer; picking a chat closes it.
    await page.get_by_role("button", name="Open menu").tap()
    await expect(sidebar).to_be_visible()
    await person.screenshot("phone-menu")
    await sidebar.get_by_role("button", name="New chat", exact=True).tap()
    await expect(sidebar).to_be_hidden()
    await expect(page.get_by_text("How can I help you today?")).to_be_visible()
    await page.get_by_role("button", name="Open menu").tap()
    await sidebar.locator(".room-link").first.tap()
    await expect(sidebar).to_be_hidden()
    await expect(reply.locator("strong")).to_have_text("this")
    person.console.assert_clean()


async def test_a_revoked_session_goes_back_to_sign_in(person) -> None:
    page = person.page
    await person.sign_in()
    token = await page.evaluate("localStorage.getItem('gemini.token')")
    async with httpx.AsyncClient(base_url=person.stack.url("gateway")) as api:
        logout = await api.post(
            "/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}
        )  # signs out everywhere, this browser too
        assert logout.status_code == 200
    await person.send("Still there?")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.get_by_role("alert")).to_have_text(
        "You were signed out. Sign in again to continue."
    )
    # The 401 itself is logged by the browser's network layer, not by the client.
    person.console.assert_clean(r"status of 401")


async def test_markdown_is_rendered_safely(person) -> None:
    page = person.page
    await page.goto("/")
    html = await page.evaluate(
        """async (text) => {
            const { renderMarkdown } = await import("/static/markdown.js");
            const box = document.createElement("div");
            box.append(renderMarkdown(text));
            return box.innerHTML;
        }""",
        "\n".join(
            [
                "# Title",
                "Some **bold**, *italic*, `code <i>` and ~~gone~~.",
                "",
                "- one",
                "- two",
                "  1. nested",
                "",
                "```python",
                "print('<script>alert(1)</script>')",
                "```",
                "",
                "| a | b |",
                "|---|:-:|",
                "| 1 | 2 |",
                "",
                "> quoted",
                "",
                '<img src=x onerror="alert(1)"> <script>alert(2)</script>',
                "[safe](https://example.com/a?b=1) [bad](javascript:alert(3)) "
                "[data](data:text/html,hi) https://example.org/x.",
            ]
        ),
    )
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html and "<em>italic</em>" in html
    assert "<code>code &lt;i&gt;</code>" in html and "<del>gone</del>" in html
    assert "<ul><li>one</li><li>two<ol><li>nested</li></ol></li></ul>" in html
    assert (
        '<pre><code class="language-python" data-language="python">'
        '<span class="tok-function">print</span>('
        "<span class=\"tok-string\">'&lt;script&gt;alert(1)&lt;/script&gt;'</span>)</code></pre>"
    ) in html
    assert "<th>a</th>" in html and '<td class="align-center">2</td>' in html
    assert "<blockquote><p>quoted</p></blockquote>" in html
    # HTML in the text is text; only http(s) links become links.
    assert '&lt;img src=x onerror="alert(1)"&gt; &lt;script&gt;alert(2)&lt;/script&gt;' in html
    assert "<img" not in html and "<script" not in html
    assert (
        '<a href="https://example.com/a?b=1" target="_blank" rel="noopener noreferrer nofollow">'
        "safe</a>"
    ) in html
    assert "javascript:" not in html and 'href="data:' not in html
    assert ">bad<" not in html and " bad " in html and " data " in html
    assert '<a href="https://example.org/x"' in html
    person.console.assert_clean()


async def test_delete_the_account_with_a_code_and_start_afresh(person) -> None:
    page = person.page
    await person.sign_in()
    await person.ask("Remember this?")
    await expect(page.locator(".room-item")).to_have_count(1)

    await page.get_by_role("button", name="Delete account").click()
    dialog = page.get_by_role("dialog", name="Delete your account?")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("cancels Pro at once")
    code = dialog.get_by_label("Code")
    await expect(code).to_have_value(re.compile(r"^\d{6}$"))  # development fills it in
    await person.screenshot("delete-account")
    await dialog.get_by_role("button", name="Delete account").click()

    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.get_by_text("Your account and its chats were deleted.")).to_be_visible()
    # The same number signs up again as a new account: nothing of the old one is there.
    await person.sign_in()
    await expect(page.get_by_text("Your chats will appear here.")).to_be_visible()
    await expect(page.locator(".room-item")).to_have_count(0)
    person.console.assert_clean()


async def test_edit_a_prompt_and_step_between_the_branches(person) -> None:
    page = person.page
    await person.sign_in()
    await person.ask("Tell me about tea")
    await person.ask("And about coffee?")
    first = page.locator(".msg.user").first
    await first.get_by_role("button", name="Edit").click()
    box = page.get_by_label("Edit your message")
    await expect(box).to_have_value("Tell me about tea")
    await box.fill("Tell me about cocoa")
    await page.get_by_role("button", name="Send", exact=True).click()

    # The chat goes on from the new version; the old one is a branch, one arrow away.
    await expect(page.locator(".msg.user .bubble")).to_have_text(["Tell me about cocoa"])
    await expect(person.last_reply.locator(".md")).to_contain_text(
        'reply to "Tell me about cocoa"', timeout=20_000
    )
    versions = page.locator(".msg.user").first.get_by_role("group", name="Versions")
    await expect(versions).to_contain_text("2 / 2")
    await person.screenshot("branches")
    await versions.get_by_role("button", name="Previous version").click()
    await expect(page.locator(".msg.user .bubble")).to_have_text(
        ["Tell me about tea", "And about coffee?"]
    )
    await expect(versions).to_contain_text("1 / 2")
    await versions.get_by_role("button", name="Next version").click()
    await expect(page.locator(".msg.user .bubble")).to_have_text(["Tell me about cocoa"])

    # It is the server's path: a reload shows the same branch.
    await page.reload()
    await expect(page.locator(".msg.user .bubble")).to_have_text(["Tell me about cocoa"])
    await expect(versions).to_contain_text("2 / 2")
    person.console.assert_clean()
