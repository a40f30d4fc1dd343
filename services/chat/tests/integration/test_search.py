"""Search across chats: prompts, replies and titles found by their words, only the
caller's, best match first, a page at a time, with snippets that mark what matched."""

import base64
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from shared.events import ReplyCompleted, TokenUsage
from shared.testing.wait import eventually


def put_room(database_url: str, user_id: uuid.UUID, name: str = "a room") -> uuid.UUID:
    """A room written straight to the table (the API's daily quota would stop the many
    messages some tests need)."""
    room_id = uuid.uuid4()
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO chat.chatrooms (id, user_id, name) VALUES (%s, %s, %s)",
            (room_id, user_id, name),
        )
    return room_id


def put_message(
    database_url: str,
    user_id: uuid.UUID,
    room_id: uuid.UUID,
    content: str,
    *,
    role: str = "USER",
    status: str = "completed",
    created_at: datetime | None = None,
    superseded: bool = False,
) -> uuid.UUID:
    message_id = uuid.uuid4()
    replaced_by = message_id if superseded else None  # any message id will do
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO chat.messages (id, chatroom_id, user_id, role, content, status,"
            " created_at, superseded_by)"
            " VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s, clock_timestamp()), %s)",
            (message_id, room_id, user_id, role, content, status, created_at, replaced_by),
        )
    return message_id


async def search(client, user, q: str, **params) -> dict:
    response = await client.get("/api/v1/search", params={"q": q, **params}, headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    assert body["results"] == len(body["data"]["hits"])
    return body["data"]


def marked(hit: dict) -> list[str]:
    return [part["text"] for part in hit["snippet"] if part["match"]]


def whole(hit: dict) -> str:
    return "".join(part["text"] for part in hit["snippet"])


async def test_finds_a_title_a_prompt_and_a_reply_with_the_matches_marked(api, client, user, bus):
    room = await api.new_room(user, "Yoga for beginners")
    sent = (await api.send(user, room["id"], "How do I start with yoga breathing?")).json()
    prompt_id, reply_id = sent["data"]["message"]["id"], sent["data"]["reply"]["id"]
    text = "Start with five minutes of slow yoga breathing (pranayama) each morning."
    await bus.emit(
        ReplyCompleted(
            reply_id=uuid.UUID(reply_id),
            chatroom_id=uuid.UUID(room["id"]),
            user_id=user.id,
            text=text,
            finish_reason="STOP",
            usage=TokenUsage(prompt_tokens=3, output_tokens=9, total_tokens=12),
        )
    )

    async def three_hits() -> bool:
        return len((await search(client, user, "yoga"))["hits"]) == 3

    await eventually(three_hits, what="the completed reply to be searchable")
    data = await search(client, user, "  yoga  ")
    assert data["query"] == "yoga"
    title, *messages = data["hits"]
    assert title["kind"] == "title"  # a title outweighs a message
    assert title["messageId"] is None and whole(title) == "Yoga for beginners"
    assert {(h["kind"], h["messageId"]) for h in messages} == {
        ("prompt", prompt_id),
        ("reply", reply_id),
    }
    for hit in data["hits"]:
        assert hit["chatroomId"] == room["id"]
        assert hit["chatroomName"] == "Yoga for beginners"
        assert [w.lower() for w in marked(hit)] == ["yoga"]
    reply = next(h for h in messages if h["kind"] == "reply")
    assert whole(reply).startswith("Start with five minutes of slow yoga breathing")
    assert whole(reply) in text


async def test_words_are_matched_by_their_stem(client, user, chat_database_url):
    room = put_room(chat_database_url, user.id)
    put_message(chat_database_url, user.id, room, "She was running and breathing hard")
    [hit] = (await search(client, user, "runs breathe"))["hits"]
    assert marked(hit) == ["running", "breathing"]


async def test_another_users_rows_never_appear(client, make_user, chat_database_url):
    alice, bob = make_user(), make_user()
    for owner in (alice, bob):
        room = put_room(chat_database_url, owner.id, f"secret plans of {owner.id}")
        put_message(chat_database_url, owner.id, room, "the secret plans are ready")
    for me, other in ((alice, bob), (bob, alice)):
        hits = (await search(client, me, "secret plans"))["hits"]
        assert len(hits) == 2
        # A page of one: full every time (the filter is in the ranking, not applied after).
        first = await search(client, me, "secret plans", limit=1)
        second = await search(client, me, "secret plans", limit=1, cursor=first["nextCursor"])
        assert [h["messageId"] for h in first["hits"] + second["hits"]] == [
            h["messageId"] for h in hits
        ]
        assert second["nextCursor"] is None
        assert all(str(other.id) not in whole(h) for h in hits)
        assert all(str(me.id) in whole(h) for h in hits if h["kind"] == "title")


async def test_pages_return_every_hit_exactly_once(client, user, chat_database_url):
    """Identical texts at the same instant tie on rank and time: the id decides."""
    at = datetime(2026, 11, 1, tzinfo=UTC)
    expected = set()
    for i in range(3):
        room = put_room(chat_database_url, user.id, f"room {i}")
        for j in range(8):
            content = "the same monsoon words" if j % 2 else f"monsoon rain number {j}"
            tie = at if j % 2 else None
            expected.add(put_message(chat_database_url, user.id, room, content, created_at=tie))
    seen: list[str] = []
    data = await search(client, user, "monsoon", limit=5)
    while True:
        assert len(data["hits"]) <= 5
        seen += [h["messageId"] for h in data["hits"]]
        if not data["nextCursor"]:
            break
        data = await search(client, user, "monsoon", limit=5, cursor=data["nextCursor"])
    assert len(seen) == len(set(seen)) == 24
    assert set(seen) == {str(m) for m in expected}


async def test_a_stronger_match_ranks_first(client, user, chat_database_url):
    room = put_room(chat_database_url, user.id)
    weak = put_message(chat_database_url, user.id, room, "A kubernetes deployment, once.")
    strong = put_message(
        chat_database_url,
        user.id,
        room,
        "Kubernetes deployment basics: a kubernetes deployment keeps pods running;"
        " roll a deployment back with kubectl rollout undo.",
        role="GEMINI",
        created_at=datetime(2020, 1, 1, tzinfo=UTC),  # older: rank, not time, puts it first
    )
    hits = (await search(client, user, "kubernetes deployment"))["hits"]
    assert [h["messageId"] for h in hits] == [str(strong), str(weak)]
    assert [h["kind"] for h in hits] == ["reply", "prompt"]


async def test_only_what_the_client_shows_is_found(client, user, chat_database_url):
    room = put_room(chat_database_url, user.id)
    shown = {
        put_message(chat_database_url, user.id, room, "zebra prompt"),
        put_message(chat_database_url, user.id, room, "zebra reply", role="GEMINI"),
        put_message(
            chat_database_url, user.id, room, "zebra stopped", role="GEMINI", status="cancelled"
        ),
    }
    for status in ("failed", "blocked", "queued"):
        put_message(chat_database_url, user.id, room, "zebra", role="GEMINI", status=status)
    put_message(chat_database_url, user.id, room, "zebra old", role="GEMINI", superseded=True)
    hits = (await search(client, user, "zebra"))["hits"]
    assert {h["messageId"] for h in hits} == {str(m) for m in shown}


async def test_snippets_are_plain_text_whatever_the_content_holds(client, user, chat_database_url):
    """Markup-like tags are left out of a snippet (Postgres' parser reads them as tags),
    markers written in the content are taken out, and everything else is text as written
    (the client shows it as text), on one line."""
    room = put_room(chat_database_url, user.id)
    put_message(
        chat_database_url,
        user.id,
        room,
        "<b>falcon</b> \ue000fake\ue001 &amp; Tom & Jerry's\n\n<script>alert(1)</script> end",
    )
    [hit] = (await search(client, user, "falcon"))["hits"]
    assert hit["snippet"][0] == {"text": "falcon", "match": True}
    assert whole(hit).startswith("falcon fake &amp; Tom & Jerry")
    assert not {"<", ">", "\n", "\ue000", "\ue001"} & set(whole(hit))


async def test_a_long_message_gives_fragments_around_the_matches(client, user, chat_database_url):
    room = put_room(chat_database_url, user.id)
    filler = " ".join(f"word{i}" for i in range(300))
    put_message(chat_database_url, user.id, room, f"{filler} the quetzal flies {filler}")
    [hit] = (await search(client, user, "quetzal"))["hits"]
    assert marked(hit) == ["quetzal"]
    assert len(whole(hit)) < 400


async def test_websearch_syntax_and_stop_words(client, user, chat_database_url):
    room = put_room(chat_database_url, user.id)
    both = put_message(chat_database_url, user.id, room, "green tea with honey")
    put_message(chat_database_url, user.id, room, "green honey tea")
    lemon = put_message(chat_database_url, user.id, room, "lemon water")

    async def ids(q: str) -> set[str]:
        return {h["messageId"] for h in (await search(client, user, q))["hits"]}

    assert await ids('"green tea"') == {str(both)}
    assert await ids("honey -with") == await ids("honey") == await ids("HONEY")
    assert len(await ids("honey")) == 2
    assert await ids("lemon or nothinglike") == {str(lemon)}
    assert await ids("the with") == set()  # only stop words: nothing to match, not an error


async def test_a_renamed_room_is_found_by_its_new_name(api, client, user):
    room = await api.new_room(user, "untitled")
    assert (await search(client, user, "pelican"))["hits"] == []
    await client.patch(
        f"/api/v1/chatroom/{room['id']}", json={"name": "Pelican facts"}, headers=user.headers
    )
    [hit] = (await search(client, user, "pelicans"))["hits"]
    assert (hit["kind"], hit["chatroomId"], marked(hit)) == ("title", room["id"], ["Pelican"])


def _cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": "a\x00b"}, "q"),
        ({"q": "ok", "limit": "0"}, "limit"),
        ({"q": "ok", "limit": "51"}, "limit"),
        ({"q": "ok", "cursor": "nope"}, "cursor"),
        ({"q": "ok", "cursor": _cursor('["high", "2026-01-01", "x"]')}, "cursor"),
        ({"q": "ok", "cursor": _cursor(f'[0.1, "yesterday", "{uuid.uuid4()}"]')}, "cursor"),
        ({"q": "ok", "cursor": _cursor("{}")}, "cursor"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(client, user, params, field):
    response = await client.get("/api/v1/search", params=params, headers=user.headers)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == "fail"
    assert body["errors"][0]["field"] == field


async def test_search_needs_a_token(client):
    response = await client.get("/api/v1/search", params={"q": "yoga"})
    assert response.status_code == 401
    assert response.json()["status"] == "fail"
