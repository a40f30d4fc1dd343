"""Search across chats in the web client: the box in the sidebar, results with the matched
words marked in place of the chat list, a hit opening its chat at the message found, and
text from chats shown as text."""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest
from playwright.async_api import expect

pytestmark = pytest.mark.browser


async def signed_in(person) -> None:
    """Signed in, with the chat list loaded: a chat created before the list's answer
    arrives would be dropped from the sidebar by that answer (app.js, loadRooms)."""
    page = person.page
    async with page.expect_response(lambda r: "/api/v1/chatroom?limit=" in r.url):
        await person.sign_in()


async def test_search_finds_messages_and_titles_and_opens_the_chat_at_the_hit(person) -> None:
    page = person.page
    await signed_in(person)
    await person.ask("Plan a kayak trip along the fjords")
    kayak_url = page.url
    room = page.locator(".room-item .room-link")
    await expect(room).to_have_text(["Plan a kayak trip along"], timeout=20_000)  # auto title
    await page.get_by_role("button", name="New chat").first.click()
    await person.ask("What is yoga? <img src=x onerror=alert(1)>")
    await expect(room.first).to_have_text("What is yoga <img src=x", timeout=20_000)

    box = page.get_by_role("searchbox", name="Search chats")
    results = page.locator("#search-list .search-hit")
    await box.fill("fjord")
    await expect(results).to_have_count(2)
    await expect(page.get_by_role("heading", name="Recent")).to_be_hidden()
    for kind in ("You asked", "Gemini replied"):
        await expect(results.filter(has_text=kind)).to_have_count(1)
    await expect(results.locator("mark")).to_have_text(["fjords", "fjords"])
    await expect(results.locator(".hit-room")).to_have_text(["Plan a kayak trip along"] * 2)
    await person.screenshot("search")

    # A stemmed word finds the title too, and a title outranks a message.
    await box.fill("kayaks")
    await expect(results.first.locator(".hit-kind")).to_have_text("Chat title")
    await expect(results.first.locator("mark")).to_have_text("kayak")

    # A hit opens its chat with the message found marked.
    await box.fill("fjords")
    prompt_hit = results.filter(has_text="You asked")
    await prompt_hit.click()
    await expect(page).to_have_url(re.compile(re.escape(kayak_url) + r"\?m=[0-9a-f-]{36}$"))
    found = page.locator(".msg.found")
    await expect(found).to_have_count(1)
    await expect(found.locator(".bubble")).to_have_text("Plan a kayak trip along the fjords")

    # What a chat holds is text in the results, never markup.
    await box.fill("yoga")
    await expect(results).to_have_count(3)
    await expect(results.first).to_contain_text("What is yoga <img src=x")  # the title
    await expect(results.locator("mark")).to_have_text(["yoga"] * 3, ignore_case=True)
    assert await page.locator("#search-results img").count() == 0

    # Nothing found says so; Escape goes back to the chat list.
    await box.fill("platypus")
    await expect(page.get_by_text("No chats match “platypus”.")).to_be_visible()
    await expect(results).to_have_count(0)
    await box.press("Escape")
    await expect(box).to_have_value("")
    await expect(page.get_by_role("heading", name="Recent")).to_be_visible()
    await expect(room).to_have_count(2)
    person.console.assert_clean()


async def test_results_do_not_outlive_the_session(person) -> None:
    page = person.page
    await signed_in(person)
    await person.ask("Tell me more about the pelicans")  # titled "Tell me more about the"
    box = page.get_by_role("searchbox", name="Search chats")
    await box.fill("pelican")
    await expect(page.locator("#search-list .search-hit")).to_have_count(2)
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await person.sign_in()  # the same number
    await expect(box).to_have_value("")
    await expect(page.locator("#search-list .search-hit")).to_have_count(0)
    await expect(page.get_by_role("heading", name="Recent")).to_be_visible()
    # Signing up a known number is a 409 (the client then sends the code), which the
    # browser's network layer logs.
    person.console.assert_clean(r"status of 409")


async def test_more_results_pages_through_every_hit(person, database_url) -> None:
    """More hits than a page (20): More results adds the next page until there is none.
    The messages are written straight to the table (the Basic quota allows 3 prompts)."""
    page = person.page
    await signed_in(person)
    await person.ask("Herons nest in colonies")
    titled = page.locator(".room-item .room-link")
    await expect(titled).to_have_text(["Herons nest in colonies"], timeout=20_000)
    room_id = page.url.rsplit("/", 1)[1]
    token = await page.evaluate("localStorage.getItem('gemini.token')")
    me = await page.request.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    user_id = (await me.json())["data"]["user"]["id"]
    with psycopg.connect(database_url) as conn:
        for i in range(23):
            conn.execute(
                "INSERT INTO chat.messages (id, chatroom_id, user_id, role, content, status)"
                " VALUES (%s, %s, %s, 'USER', %s, 'completed')",
                (uuid.uuid4(), room_id, user_id, f"heron fact number {i}"),
            )
    box = page.get_by_role("searchbox", name="Search chats")
    results = page.locator("#search-list .search-hit")
    more = page.get_by_role("button", name="More results")
    await box.fill("heron")
    await expect(results).to_have_count(20)
    await more.click()
    # 23 written, the prompt, its reply (which quotes it) and the chat's title.
    await expect(results).to_have_count(26)
    await expect(more).to_be_hidden()
    hrefs = await results.evaluate_all("links => links.map((a) => a.getAttribute('href'))")
    assert len(set(hrefs)) == len(hrefs)
    person.console.assert_clean()


async def test_a_hit_older_than_the_chat_shows_is_loaded_and_marked(person, database_url) -> None:
    """The chat opens at its latest 50 messages; the one found is 70 back."""
    page = person.page
    await signed_in(person)
    await person.ask("Where do ospreys winter?")
    room_id = page.url.rsplit("/", 1)[1]
    with psycopg.connect(database_url) as conn:
        user_id = conn.execute(
            "SELECT user_id FROM chat.chatrooms WHERE id = %s", (room_id,)
        ).fetchone()[0]
        for i in range(70):
            conn.execute(
                "INSERT INTO chat.messages (id, chatroom_id, user_id, role, content, status)"
                " VALUES (%s, %s, %s, 'USER', %s, 'completed')",
                (uuid.uuid4(), room_id, user_id, f"later message {i}"),
            )
    await page.get_by_role("button", name="New chat").first.click()
    await page.get_by_role("searchbox", name="Search chats").fill("ospreys")
    await page.locator("#search-list .search-hit").filter(has_text="You asked").click()
    found = page.locator(".msg.found")
    await expect(found).to_have_count(1)
    await expect(found.locator(".bubble")).to_have_text("Where do ospreys winter?")
    await expect(found).to_be_in_viewport()
    person.console.assert_clean()
