"""Account deletion (UserDeleted on auth.events) in the worker, against the Gemini
simulator and real Redis: a reply of the user in flight in another worker process stops,
a prompt of theirs that arrives later is acked unanswered, and nothing of them is left in
the result stream, its dead letters or any key; twice delivered, or handled by a worker
that was down when it happened, the same."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from ai_worker.app import create_app
from ai_worker.erasure import deleted_key
from ai_worker.handlers import GROUP
from shared.dlq import dlq_stream
from shared.events import ReplyCompleted, ReplyFailed, UserDeleted, encode
from shared.events.envelope import decode, to_json
from shared.testing.wait import eventually, handled


@pytest.fixture
def streams(cleanup: list[str]) -> dict[str, str]:
    """Stand-ins for chat.events, auth.events and ai.events, unique to the test."""
    tag = uuid.uuid4().hex[:12]
    names = {kind: f"test-{kind}-{tag}.events" for kind in ("chat", "auth", "ai", "idle")}
    cleanup.extend([*names.values(), *(dlq_stream(n) for n in names.values())])
    return names


async def add(redis, stream: str, envelope) -> None:
    await redis.xadd(stream, {"type": envelope.type, "envelope": to_json(envelope)})


def deletion(user_id: uuid.UUID):
    return encode(UserDeleted(user_id=user_id, deleted_at=datetime.now(UTC)), producer="auth")


async def results(redis, stream: str) -> list:
    return [decode(fields["envelope"])[1] for _, fields in await redis.xrange(stream)]


async def traces_of(redis, user_id: uuid.UUID, streams: dict[str, str]) -> list[str]:
    """Keys naming the user, and the worker's streams (the test's ai.events and its dead
    letters, the reply streams) holding an entry about them. UserDeleted itself, the id
    only, stays on auth.events; chat erases its own chat.events."""
    found = []
    async for key in redis.scan_iter(count=1000):
        if str(user_id) in key:
            found.append(key)
    names = [streams["ai"], dlq_stream(streams["ai"])]
    async for key in redis.scan_iter(match="ai.reply.*", count=1000):
        names.append(key)
    for name in names:
        if await redis.type(name) != "stream":
            continue
        for _, fields in await redis.xrange(name):
            if fields.get("type") != "UserDeleted" and str(user_id) in json.dumps(fields):
                found.append(name)
                break
    return found


def worker(make_settings, streams: dict[str, str], *, deletions: str | None = None, **settings):
    """A worker process: prompts from the test's chat stream, results to its ai stream,
    UserDeleted from ``deletions`` (another name: it never hears of a deletion itself)."""
    return create_app(
        make_settings(**settings),
        streams=[streams["chat"]],
        result_stream=streams["ai"],
        deletion_streams=[deletions or streams["auth"]],
    )


async def test_a_reply_in_flight_in_another_process_stops_and_leaves_nothing(
    redis, make_settings, sim, queued, streams
):
    # A minute-long reply: it ends within the wait below only if it is stopped.
    await sim.configure(token_delay_ms=100, reply_tokens=600)
    event, envelope = queued("a long answer please")
    other, other_envelope = queued("someone else's question")
    generating = worker(
        make_settings,
        streams,
        deletions=streams["idle"],
        gemini_request_timeout_seconds=120,  # no timeout ends it before the reply's end
        gemini_chunk_timeout_seconds=60,
    )
    deleting = create_app(
        make_settings(),
        streams=[streams["idle"]],
        result_stream=streams["ai"],
        deletion_streams=[streams["auth"]],
    )

    async with generating.router.lifespan_context(generating):
        await add(redis, streams["chat"], envelope)
        await eventually(
            lambda: _has_tokens(redis, event.reply_id), what="the reply to be generated"
        )
        async with deleting.router.lifespan_context(deleting):
            await add(redis, streams["auth"], deletion(event.user_id))
            await handled(redis, streams["auth"], GROUP)
        # The generating process hears of it through the marker, within its stop poll.
        await handled(redis, streams["chat"], GROUP, timeout=15)
        await sim.configure(token_delay_ms=1, reply_tokens=12)
        await add(redis, streams["chat"], other_envelope)
        await handled(redis, streams["chat"], GROUP)

    published = await results(redis, streams["ai"])
    assert [type(r) for r in published] == [ReplyCompleted]
    assert published[0].user_id == other.user_id
    assert await traces_of(redis, event.user_id, streams) == []
    assert await redis.exists(deleted_key(event.user_id))


async def _has_tokens(redis, reply_id) -> bool:
    entries = await redis.xrange(f"ai.reply.{reply_id}")
    return any(fields["type"] == "token" for _, fields in entries)


async def test_a_worker_down_at_the_deletion_catches_up_and_drops_the_users_prompts(
    redis, make_settings, sim, queued, streams
):
    event, envelope = queued("asked after the account was deleted")
    await add(redis, streams["auth"], deletion(event.user_id))  # no worker running
    app = worker(make_settings, streams)

    async with app.router.lifespan_context(app):
        await handled(redis, streams["auth"], GROUP)
        await add(redis, streams["chat"], envelope)
        await handled(redis, streams["chat"], GROUP)

    assert await sim.requests() == []  # the model was not asked
    assert await results(redis, streams["ai"]) == []
    assert await traces_of(redis, event.user_id, streams) == []


async def test_what_was_published_is_erased_and_a_second_delivery_changes_nothing(
    redis, make_settings, sim, queued, streams
):
    first, first_envelope = queued("hello")
    gone = first.user_id
    kept, kept_envelope = queued("hello too")
    app = worker(make_settings, streams)

    async with app.router.lifespan_context(app):
        for envelope in (first_envelope, kept_envelope):
            await add(redis, streams["chat"], envelope)
        await handled(redis, streams["chat"], GROUP)
        # A failed result of the user's waits in the dead letters of ai.events.
        failed = ReplyFailed(
            reply_id=first.reply_id,
            chatroom_id=first.chatroom_id,
            user_id=gone,
            status="failed",
            reason="model_error",
            message="x",
            partial_text="the user's words",
        )
        await add(redis, dlq_stream(streams["ai"]), encode(failed, producer="ai-worker"))
        assert await traces_of(redis, gone, streams)  # the test can fail

        event = deletion(gone)
        await add(redis, streams["auth"], event)
        await add(redis, streams["auth"], event)  # delivered twice
        await handled(redis, streams["auth"], GROUP)
        await add(redis, streams["auth"], deletion(gone))  # and deleted again
        await handled(redis, streams["auth"], GROUP)

    assert await traces_of(redis, gone, streams) == []
    [left] = await results(redis, streams["ai"])
    assert isinstance(left, ReplyCompleted) and left.user_id == kept.user_id
    assert await _has_tokens(redis, kept.reply_id)  # another user's reply stream stays
