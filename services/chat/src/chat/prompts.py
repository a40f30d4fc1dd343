"""Prompts and their replies: send, regenerate, stop, read one reply, and what the reply
events do. Each use case takes the Database and runs its own transactions, except the event
handlers' (they run in the consumer's)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import psycopg
import structlog
from redis.asyncio import Redis

from chat import repository
from chat.context import PRODUCER, ChatContext
from chat.models import model_for_reply
from chat.quota import (
    DailyLimitReached,
    Usage,
    daily_limit,
    next_midnight,
    take_quota,
    tier_from,
    utc_day,
)
from chat.repository import Message
from chat.rooms import room_not_found
from chat.settings import Settings
from shared import outbox, replies
from shared.db import Database, Transaction
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.events import HistoryTurn, MessageQueued

log = structlog.get_logger(__name__)

# How long a stop request outlives the request (the worker watching it, a late start).
STOP_TTL_SECONDS = 3600


@dataclass(frozen=True)
class QueuedPrompt:
    prompt: Message
    reply: Message
    usage: Usage


def _prompt_text(raw: str, settings: Settings) -> str:
    text = raw.strip()
    if not text:
        raise ValidationFailed.on("content", "Message content is required.")
    if len(text) > settings.prompt_max_chars:
        message = f"At most {settings.prompt_max_chars} characters."
        raise ValidationFailed.on("content", message)
    return text


async def _history(tx: Transaction, settings: Settings, prompt: Message) -> list[HistoryTurn]:
    """The conversation before ``prompt`` on its branch, bounded (``_bounded_history``)."""
    rows = await repository.history_from(tx.conn, prompt.parent_id, settings.history_max_turns)
    return _bounded_history(settings, rows)


def _bounded_history(settings: Settings, rows: list[tuple[str, str]]) -> list[HistoryTurn]:
    """(role, content) rows, newest first, as the history a prompt carries: newest turns
    kept first, bounded by count and characters, starting with a user turn (a model turn
    cannot open a conversation)."""
    kept: list[HistoryTurn] = []
    budget = settings.history_max_chars
    for role, content in rows:  # newest first
        if len(content) > budget:
            break
        budget -= len(content)
        kept.append(HistoryTurn(role="user" if role == "USER" else "model", text=content))
    kept.reverse()
    while kept and kept[0].role != "user":
        kept.pop(0)
    return kept


async def queue(
    tx: Transaction,
    settings: Settings,
    prompt: Message,
    reply: Message,
    attempt: int,
    correlation_id: str | None,
    *,
    want_title: bool = False,
) -> None:
    event = MessageQueued(
        reply_id=reply.id,
        message_id=prompt.id,
        chatroom_id=prompt.chatroom_id,
        user_id=prompt.user_id,
        prompt=prompt.content,
        history=await _history(tx, settings, prompt),
        attempt=attempt,
        want_title=want_title,
        model=reply.model,
    )
    await outbox.add(tx.conn, event, producer=PRODUCER, correlation_id=correlation_id)


async def _new_reply(tx: Transaction, prompt: Message, day: date, model: str) -> Message:
    """A queued reply to ``prompt``; 409 while another reply in the room is pending."""
    try:
        async with tx.conn.transaction():  # a savepoint: the conflict is expected
            return await repository.insert_message(
                tx.conn,
                message_id=uuid.uuid4(),
                chatroom_id=prompt.chatroom_id,
                user_id=prompt.user_id,
                role="GEMINI",
                content="",
                status="queued",
                reply_to=prompt.id,
                quota_day=day,
                model=model,
                parent_id=prompt.id,
            )
    except psycopg.errors.UniqueViolation:
        raise _reply_pending() from None


def _reply_pending() -> Conflict:
    return Conflict(
        "A reply in this chatroom is still being generated. Wait for it, then send.",
        code="reply_pending",
    )


async def queue_message(
    db: Database,
    ctx: ChatContext,
    user_id: uuid.UUID,
    room_id: uuid.UUID,
    raw_content: str,
    correlation_id: str | None,
    *,
    edit_of: Message | None = None,
) -> QueuedPrompt:
    """Take a quota unit, store the prompt and a queued reply, and emit MessageQueued:
    all or nothing, so a refused or failed send never costs a prompt.

    Two round trips to Postgres and no transaction: what the room and the user's day
    look like, then one statement that takes the quota unit and inserts both messages and
    the outbox row (atomic by itself). That statement repeats the checks of the first
    atomically (the quota's conditional upsert, the one-pending-reply index, the room's
    foreign key), so racing requests cannot pass them.

    The prompt follows the room's leaf; an edit (``edit_of``, a prompt of the room) is a
    sibling of the prompt it replaces instead, which is kept with its replies. Either way
    the room's current path ends at the new reply."""
    content = _prompt_text(raw_content, ctx.settings)
    settings = ctx.settings
    now = datetime.now(UTC)
    day, resets_at = utc_day(now), next_midnight(now)
    async with db.autocommit() as tx:
        context = await repository.prompt_context(
            tx.conn,
            room_id,
            user_id,
            day,
            settings.history_max_turns,
            editing=edit_of is not None,
            anchor=edit_of.parent_id if edit_of else None,
        )
        if context is None:
            raise room_not_found()
        tier = tier_from(context.subscription, now)
        limit = daily_limit(settings, tier)
        if limit is not None and context.used_today >= limit:
            raise DailyLimitReached(Usage(tier, limit, limit, resets_at))
        if context.pending:
            raise _reply_pending()
        prompt_id, reply_id = uuid.uuid4(), uuid.uuid4()
        model = model_for_reply(settings, tier, context.room)
        event = MessageQueued(
            reply_id=reply_id,
            message_id=prompt_id,
            chatroom_id=room_id,
            user_id=user_id,
            prompt=content,
            history=_bounded_history(settings, context.history),
            attempt=1,
            want_title=context.room.auto_title and context.prompts == 0,
            model=model,
        )
        try:
            stored = await repository.store_prompt(
                tx.conn,
                user_id=user_id,
                room_id=room_id,
                day=day,
                limit=limit,
                prompt_id=prompt_id,
                reply_id=reply_id,
                content=content,
                model=model,
                parent_id=context.parent,
                event=outbox.row(event, producer=PRODUCER, correlation_id=correlation_id),
            )
        except psycopg.errors.UniqueViolation:
            raise _reply_pending() from None
        except psycopg.errors.ForeignKeyViolation:  # the room was deleted meanwhile
            raise room_not_found() from None
        if stored.used is None:  # another request took the last unit meanwhile
            assert limit is not None
            raise DailyLimitReached(Usage(tier, limit, limit, resets_at))
    assert stored.prompt is not None and stored.reply is not None
    log.info(
        "chat.message_queued",
        chatroom_id=str(room_id),
        reply_id=str(reply_id),
        tier=tier,
        model=model,
    )
    return QueuedPrompt(stored.prompt, stored.reply, Usage(tier, limit, stored.used, resets_at))


async def regenerate_reply(
    db: Database,
    ctx: ChatContext,
    user_id: uuid.UUID,
    room_id: uuid.UUID,
    reply_id: uuid.UUID,
    correlation_id: str | None,
) -> QueuedPrompt:
    """A new reply to the prompt of the room's last reply (quota applies); the previous
    reply is kept, marked superseded by the new one."""
    now = datetime.now(UTC)
    async with db.transaction() as tx:
        room = await repository.get_chatroom(tx.conn, room_id, user_id, lock=True)
        old = await repository.get_message(tx.conn, reply_id, room_id, user_id)
        if room is None or old is None or old.role != "GEMINI" or old.reply_to is None:
            raise NotFound("Reply not found.", code="reply_not_found")
        if old.status in repository.PENDING:
            raise Conflict("This reply is still being generated.", code="reply_pending")
        if room.leaf_id != old.id:
            raise Conflict(
                "Only the last reply of the chat's current branch can be regenerated.",
                code="not_last_reply",
            )
        prompt = await repository.get_message_by_id(tx.conn, old.reply_to)
        assert prompt is not None
        usage = await take_quota(tx, ctx, user_id, now)
        model = model_for_reply(ctx.settings, usage.tier, room)
        reply = await _new_reply(tx, prompt, utc_day(now), model)
        await repository.supersede(tx.conn, old.id, reply.id)
        await repository.set_leaf(tx.conn, room_id, reply.id)
        await queue(tx, ctx.settings, prompt, reply, 1, correlation_id)
    log.info("chat.reply_regenerated", reply_id=str(reply.id), superseded=str(old.id))
    return QueuedPrompt(prompt, reply, usage)


async def stop_reply(
    db: Database,
    ctx: ChatContext,
    user_id: uuid.UUID,
    room_id: uuid.UUID,
    reply_id: uuid.UUID,
) -> Message:
    """End a reply being generated as ``cancelled`` with the text produced so far (it
    still counts against the quota). A reply already final is returned unchanged."""
    reply = await get_reply(db, user_id, room_id, reply_id)
    if reply.status not in repository.PENDING:
        return reply
    so_far = await replies.read_all(ctx.redis, str(reply_id))
    async with db.transaction() as tx:
        cancelled = await repository.cancel_reply(tx.conn, reply_id, so_far.text)

        async def tell_the_worker() -> None:
            # The worker stops; readers of the live stream see the end at once.
            await replies.request_stop(ctx.redis, str(reply_id), ttl=STOP_TTL_SECONDS)

        if cancelled is not None:
            tx.after_commit(tell_the_worker)
    if cancelled is None:  # it finished meanwhile
        return await get_reply(db, user_id, room_id, reply_id)
    log.info("chat.reply_stopped", reply_id=str(reply_id), chars=len(cancelled.content))
    return cancelled


async def get_reply(
    db: Database, user_id: uuid.UUID, room_id: uuid.UUID, reply_id: uuid.UUID
) -> Message:
    async with db.autocommit() as tx:  # one statement: one round trip
        reply = await repository.get_message(tx.conn, reply_id, room_id, user_id)
    if reply is None or reply.role != "GEMINI":
        raise NotFound("Reply not found.", code="reply_not_found")
    return reply


# -- what the reply events do ------------------------------------------------------------


def _announce_stored(tx: Transaction, redis: Redis | None, reply_id: uuid.UUID) -> None:
    """Once ``tx`` commits, say so on the reply's live stream: its SSE readers, which saw
    the worker's ``end``, read the stored reply then instead of polling for it."""
    if redis is None:
        return

    async def announce() -> None:
        await replies.append_stored(redis, str(reply_id))

    tx.after_commit(announce)


async def complete_reply(
    tx: Transaction,
    reply_id: uuid.UUID,
    *,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    output_tokens: int,
    announce_to: Redis | None,
) -> None:
    """Store the answer, once: a reply already final (or gone) is left as it is.
    ``announce_to``: where the reply's live stream is, to say it is stored (None: no
    reader can be waiting for the word)."""
    stored = await repository.complete_reply(
        tx.conn,
        reply_id,
        text=text,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
    )
    if stored:
        _announce_stored(tx, announce_to, reply_id)
    log.info("chat.reply_completed", reply_id=str(reply_id), stored=stored)


async def fail_reply(
    tx: Transaction,
    reply_id: uuid.UUID,
    *,
    status: str,
    code: str,
    message: str,
    partial_text: str = "",
    announce_to: Redis | None,
) -> None:
    """Store the failure, once; ``announce_to`` as for :func:`complete_reply`."""
    reply = await repository.fail_reply(
        tx.conn, reply_id, status=status, code=code, message=message, partial_text=partial_text
    )
    if reply is None:
        return
    _announce_stored(tx, announce_to, reply_id)
    # A failure is ours or the model's: the prompt is not counted. A safety block is the
    # prompt's own outcome and stays counted.
    if status == "failed" and reply.quota_day is not None:
        await repository.give_back_quota_unit(tx.conn, reply.user_id, reply.quota_day)
    log.info("chat.reply_failed", reply_id=str(reply_id), status=status, code=code)
