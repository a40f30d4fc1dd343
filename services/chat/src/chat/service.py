"""Chat use cases. Each takes a unit of work and owns its transaction."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import psycopg
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from chat import repository
from chat.repository import Chatroom, Message
from chat.settings import Settings
from chat.streaming import StreamSlots
from shared import outbox, replies
from shared.db import UnitOfWork
from shared.errors import AppError, Conflict, NotFound, ValidationFailed
from shared.events import HistoryTurn, MessageQueued
from shared.tiers import Tier, subscription_state

log = structlog.get_logger(__name__)

PRODUCER = "chat"


@dataclass
class ChatContext:
    settings: Settings
    redis: Redis
    streams: StreamSlots

    def __post_init__(self) -> None:
        self.list_cache_read = self.redis.register_script(LIST_CACHE_READ)


@dataclass(frozen=True)
class Usage:
    tier: Tier
    limit: int | None
    used: int
    resets_at: datetime

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)


@dataclass(frozen=True)
class QueuedPrompt:
    prompt: Message
    reply: Message
    usage: Usage


class DailyLimitReached(AppError):
    status_code = 429
    code = "daily_limit_reached"

    def __init__(self, usage: Usage) -> None:
        assert usage.limit is not None
        reset = int(usage.resets_at.timestamp())
        retry_after = max(1, reset - int(datetime.now(UTC).timestamp()))
        super().__init__(
            f"Daily prompt limit ({usage.limit}) reached for Basic tier."
            " Please upgrade to Pro for more usage.",
            headers={"Retry-After": str(retry_after)} | rate_limit_headers(usage),
            extra={
                "limit": usage.limit,
                "used": usage.used,
                "resetsAt": usage.resets_at.isoformat().replace("+00:00", "Z"),
            },
        )


def rate_limit_headers(usage: Usage) -> dict[str, str]:
    if usage.limit is None:
        return {}
    return {
        "X-RateLimit-Limit": str(usage.limit),
        "X-RateLimit-Remaining": str(usage.remaining),
        "X-RateLimit-Reset": str(int(usage.resets_at.timestamp())),
    }


def utc_day(now: datetime) -> date:
    return now.astimezone(UTC).date()


def next_midnight(now: datetime) -> datetime:
    return datetime.combine(utc_day(now) + timedelta(days=1), time(0), tzinfo=UTC)


# -- the chatroom list cache -------------------------------------------------------------
#
# The first page of a user's chatroom list is cached under a per-user version number.
# Every change bumps the version after its commit; a reader that fetched from the
# database before the change can only write under the old version, which nobody reads
# again. So no stale list survives a change, whatever the interleaving.


def _version_key(user_id: uuid.UUID) -> str:
    return f"chat:rooms-version:{user_id}"


def _page_prefix(user_id: uuid.UUID) -> str:
    return f"chat:rooms:{user_id}:"


def _page_key(user_id: uuid.UUID, version: str, limit: int) -> str:
    return f"{_page_prefix(user_id)}{version}:{limit}"


# The version and the page under it in one round trip: KEYS[1] the version key, ARGV the
# page key around the version. (The page key is built inside: fine on one Redis server,
# not on a cluster.)
LIST_CACHE_READ = """
local version = redis.call('GET', KEYS[1]) or '0'
return {version, redis.call('GET', ARGV[1] .. version .. ARGV[2])}
"""


async def _bump_list_version(ctx: ChatContext, user_id: uuid.UUID) -> None:
    key = _version_key(user_id)
    pipe = ctx.redis.pipeline(transaction=True)
    pipe.incr(key)
    pipe.expire(key, 30 * 86_400)
    await pipe.execute()


def _invalidate_after_commit(uow: UnitOfWork, ctx: ChatContext, user_id: uuid.UUID) -> None:
    async def bump() -> None:
        await _bump_list_version(ctx, user_id)

    uow.after_commit(bump)


# -- chatrooms ---------------------------------------------------------------------------


def _room_name(raw: str, settings: Settings) -> str:
    name = " ".join(raw.split())
    if not name:
        raise ValidationFailed.on("name", "Chatroom name is required.")
    if len(name) > settings.chatroom_name_max_chars:
        message = f"At most {settings.chatroom_name_max_chars} characters."
        raise ValidationFailed.on("name", message)
    return name


DEFAULT_ROOM_NAME = "New chat"


class ChatroomLimitReached(Conflict):
    code = "chatroom_limit_reached"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"You have reached the limit of {limit} chatrooms."
            " Delete a chatroom to create another.",
            extra={"limit": limit},
        )


async def create_chatroom(
    uow: UnitOfWork, ctx: ChatContext, user_id: uuid.UUID, raw_name: str | None
) -> Chatroom:
    """A room; without a name it is "New chat" until its first exchange gives it a title.
    409 when the user already owns ``max_chatrooms_per_user`` rooms."""
    auto_title = raw_name is None
    name = DEFAULT_ROOM_NAME if raw_name is None else _room_name(raw_name, ctx.settings)
    limit = ctx.settings.max_chatrooms_per_user
    async with uow:
        # Count under a per-user lock: concurrent creates queue up behind it, so no
        # interleaving goes past the limit.
        await repository.lock_user_chatrooms(uow.conn, user_id)
        if await repository.count_chatrooms(uow.conn, user_id) >= limit:
            log.info("chat.chatroom_limit_reached", limit=limit)
            raise ChatroomLimitReached(limit)
        room = await repository.insert_chatroom(uow.conn, uuid.uuid4(), user_id, name, auto_title)
        _invalidate_after_commit(uow, ctx, user_id)
    log.info("chat.chatroom_created", chatroom_id=str(room.id))
    return room


def encode_cursor(room: Chatroom) -> str:
    raw = json.dumps([room.created_at.isoformat(), str(room.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, room_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created_at), uuid.UUID(room_id)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed.on("cursor", "Not a cursor returned by this API.") from exc


async def list_chatrooms(
    uow: UnitOfWork,
    ctx: ChatContext,
    user_id: uuid.UUID,
    limit: int,
    cursor: str | None,
    render: Callable[[list[Chatroom], str | None], str],
) -> str:
    """The page as the API returns it, JSON (``render(rooms, next_cursor)`` shapes it); the
    first page comes from the cache when it is warm, as the very text it was stored as."""
    ttl = ctx.settings.chatroom_list_cache_ttl_seconds
    cacheable = cursor is None and ttl > 0
    page_key = None
    if cacheable:
        try:
            cached: str | None  # the page's JSON, as stored
            version, cached = await ctx.list_cache_read(
                keys=[_version_key(user_id)], args=[_page_prefix(user_id), f":{limit}"]
            )
            if cached is not None:
                return cached
            page_key = _page_key(user_id, version, limit)
        except RedisError as exc:
            log.warning("chat.list_cache_unavailable", error=repr(exc))
    after = decode_cursor(cursor) if cursor else None
    async with uow:
        rooms = await repository.list_chatrooms(uow.conn, user_id, limit + 1, after)
    next_cursor = encode_cursor(rooms[limit - 1]) if len(rooms) > limit else None
    page = render(rooms[:limit], next_cursor)
    if page_key is not None:
        try:
            await ctx.redis.set(page_key, page, ex=ttl)
        except RedisError as exc:
            log.warning("chat.list_cache_unavailable", error=repr(exc))
    return page


async def get_chatroom(
    uow: UnitOfWork,
    user_id: uuid.UUID,
    room_id: uuid.UUID,
    limit: int,
    before: uuid.UUID | None,
) -> tuple[Chatroom, list[Message], bool]:
    """The room with its latest ``limit`` messages (before message ``before``), oldest
    first, and whether older ones exist."""
    async with uow:
        room = await repository.get_chatroom(uow.conn, room_id, user_id)
        if room is None:
            raise _room_not_found()
        before_seq = None
        if before is not None:
            anchor = await repository.get_message(uow.conn, before, room_id, user_id)
            if anchor is None:
                raise ValidationFailed.on("before", "No such message in this chatroom.")
            before_seq = anchor.seq
        messages = await repository.list_messages(uow.conn, room_id, limit + 1, before_seq)
    has_more = len(messages) > limit
    return room, messages[-limit:] if has_more else messages, has_more


def _room_not_found() -> NotFound:
    return NotFound(
        "Chatroom not found or you do not have access to it.", code="chatroom_not_found"
    )


async def rename_chatroom(
    uow: UnitOfWork, ctx: ChatContext, user_id: uuid.UUID, room_id: uuid.UUID, raw_name: str
) -> Chatroom:
    name = _room_name(raw_name, ctx.settings)
    async with uow:
        room = await repository.rename_chatroom(uow.conn, room_id, user_id, name)
        if room is None:
            raise _room_not_found()
        _invalidate_after_commit(uow, ctx, user_id)
    return room


async def delete_chatroom(
    uow: UnitOfWork, ctx: ChatContext, user_id: uuid.UUID, room_id: uuid.UUID
) -> None:
    async with uow:
        if not await repository.delete_chatroom(uow.conn, room_id, user_id):
            raise _room_not_found()
        _invalidate_after_commit(uow, ctx, user_id)
    log.info("chat.chatroom_deleted", chatroom_id=str(room_id))


# -- tiers and quota ---------------------------------------------------------------------


async def _tier(uow: UnitOfWork, user_id: uuid.UUID, now: datetime) -> Tier:
    state = await subscription_state(uow.conn, user_id)
    return state.tier(now) if state else "BASIC"


async def usage(uow: UnitOfWork, ctx: ChatContext, user_id: uuid.UUID) -> Usage:
    now = datetime.now(UTC)
    async with uow:
        tier = await _tier(uow, user_id, now)
        used = await repository.quota_used(uow.conn, user_id, utc_day(now))
    limit = ctx.settings.basic_tier_daily_prompt_limit if tier == "BASIC" else None
    return Usage(tier, limit, used, next_midnight(now))


# -- messages ----------------------------------------------------------------------------


def _prompt_text(raw: str, settings: Settings) -> str:
    text = raw.strip()
    if not text:
        raise ValidationFailed.on("content", "Message content is required.")
    if len(text) > settings.prompt_max_chars:
        message = f"At most {settings.prompt_max_chars} characters."
        raise ValidationFailed.on("content", message)
    return text


async def _history(uow: UnitOfWork, settings: Settings, prompt: Message) -> list[HistoryTurn]:
    """The conversation before ``prompt``, bounded (see ``_bounded_history``)."""
    rows = await repository.conversation_before(
        uow.conn, prompt.chatroom_id, prompt.seq, settings.history_max_turns
    )
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


async def _queue(
    uow: UnitOfWork,
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
        history=await _history(uow, settings, prompt),
        attempt=attempt,
        want_title=want_title,
    )
    await outbox.add(uow.conn, event, producer=PRODUCER, correlation_id=correlation_id)


async def _take_quota(
    uow: UnitOfWork, ctx: ChatContext, user_id: uuid.UUID, now: datetime
) -> Usage:
    """Count one prompt against today's quota (Basic), or raise 429 at the limit."""
    tier = await _tier(uow, user_id, now)
    limit = ctx.settings.basic_tier_daily_prompt_limit if tier == "BASIC" else None
    used = await repository.take_quota_unit(uow.conn, user_id, utc_day(now), limit)
    if used is None:
        assert limit is not None
        raise DailyLimitReached(Usage(tier, limit, limit, next_midnight(now)))
    return Usage(tier, limit, used, next_midnight(now))


async def _new_reply(uow: UnitOfWork, prompt: Message, day: date) -> Message:
    """A queued reply to ``prompt``; 409 while another reply in the room is pending."""
    try:
        async with uow.conn.transaction():  # a savepoint: the conflict is expected
            return await repository.insert_message(
                uow.conn,
                message_id=uuid.uuid4(),
                chatroom_id=prompt.chatroom_id,
                user_id=prompt.user_id,
                role="GEMINI",
                content="",
                status="queued",
                reply_to=prompt.id,
                quota_day=day,
            )
    except psycopg.errors.UniqueViolation:
        raise _reply_pending() from None


def _reply_pending() -> Conflict:
    return Conflict(
        "A reply in this chatroom is still being generated. Wait for it, then send.",
        code="reply_pending",
    )


async def queue_message(
    uow: UnitOfWork,
    ctx: ChatContext,
    user_id: uuid.UUID,
    room_id: uuid.UUID,
    raw_content: str,
    correlation_id: str | None,
) -> QueuedPrompt:
    """Take a quota unit, store the prompt and a queued reply, and emit MessageQueued:
    all or nothing, so a refused or failed send never costs a prompt.

    Two round trips to Postgres and no transaction: what the room and the user's day
    look like, then one statement that takes the quota unit and inserts both messages and
    the outbox row (atomic by itself). That statement repeats the checks of the first
    atomically (the quota's conditional upsert, the one-pending-reply index, the room's
    foreign key), so racing requests cannot pass them."""
    content = _prompt_text(raw_content, ctx.settings)
    settings = ctx.settings
    now = datetime.now(UTC)
    day, resets_at = utc_day(now), next_midnight(now)
    async with uow.autocommit() as tx:
        context = await repository.prompt_context(
            tx.conn, room_id, user_id, day, settings.history_max_turns
        )
        if context is None:
            raise _room_not_found()
        tier: Tier = context.subscription.tier(now) if context.subscription else "BASIC"
        limit = settings.basic_tier_daily_prompt_limit if tier == "BASIC" else None
        if limit is not None and context.used_today >= limit:
            raise DailyLimitReached(Usage(tier, limit, limit, resets_at))
        if context.pending:
            raise _reply_pending()
        prompt_id, reply_id = uuid.uuid4(), uuid.uuid4()
        event = MessageQueued(
            reply_id=reply_id,
            message_id=prompt_id,
            chatroom_id=room_id,
            user_id=user_id,
            prompt=content,
            history=_bounded_history(settings, context.history),
            attempt=1,
            want_title=context.room.auto_title and context.prompts == 0,
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
                event=outbox.row(event, producer=PRODUCER, correlation_id=correlation_id),
            )
        except psycopg.errors.UniqueViolation:
            raise _reply_pending() from None
        except psycopg.errors.ForeignKeyViolation:  # the room was deleted meanwhile
            raise _room_not_found() from None
        if stored.used is None:  # another request took the last unit meanwhile
            assert limit is not None
            raise DailyLimitReached(Usage(tier, limit, limit, resets_at))
    assert stored.prompt is not None and stored.reply is not None
    log.info("chat.message_queued", chatroom_id=str(room_id), reply_id=str(reply_id), tier=tier)
    return QueuedPrompt(stored.prompt, stored.reply, Usage(tier, limit, stored.used, resets_at))


async def regenerate_reply(
    uow: UnitOfWork,
    ctx: ChatContext,
    user_id: uuid.UUID,
    room_id: uuid.UUID,
    reply_id: uuid.UUID,
    correlation_id: str | None,
) -> QueuedPrompt:
    """A new reply to the prompt of the room's last reply (quota applies); the previous
    reply is kept, marked superseded by the new one."""
    now = datetime.now(UTC)
    async with uow:
        room = await repository.get_chatroom(uow.conn, room_id, user_id, lock=True)
        old = await repository.get_message(uow.conn, reply_id, room_id, user_id)
        if room is None or old is None or old.role != "GEMINI" or old.reply_to is None:
            raise NotFound("Reply not found.", code="reply_not_found")
        if old.status in repository.PENDING:
            raise Conflict("This reply is still being generated.", code="reply_pending")
        if await repository.latest_reply_id(uow.conn, room_id) != old.id:
            raise Conflict("Only the last reply can be regenerated.", code="not_last_reply")
        prompt = await repository.get_message_by_id(uow.conn, old.reply_to)
        assert prompt is not None
        usage = await _take_quota(uow, ctx, user_id, now)
        reply = await _new_reply(uow, prompt, utc_day(now))
        await repository.supersede(uow.conn, old.id, reply.id)
        await _queue(uow, ctx.settings, prompt, reply, 1, correlation_id)
    log.info("chat.reply_regenerated", reply_id=str(reply.id), superseded=str(old.id))
    return QueuedPrompt(prompt, reply, usage)


async def stop_reply(
    uow: UnitOfWork,
    ctx: ChatContext,
    user_id: uuid.UUID,
    room_id: uuid.UUID,
    reply_id: uuid.UUID,
) -> Message:
    """End a reply being generated as ``cancelled`` with the text produced so far (it
    still counts against the quota). A reply already final is returned unchanged."""
    reply = await get_reply(uow, user_id, room_id, reply_id)
    if reply.status not in repository.PENDING:
        return reply
    so_far = await replies.read_all(ctx.redis, str(reply_id))
    async with uow:
        cancelled = await repository.cancel_reply(uow.conn, reply_id, so_far.text)

        async def tell_the_worker() -> None:
            ttl = 3600
            await replies.request_stop(ctx.redis, str(reply_id), ttl=ttl)
            # Readers of the live stream see the end at once.
            await replies.append_end(ctx.redis, str(reply_id), "cancelled", ttl=ttl)

        if cancelled is not None:
            uow.after_commit(tell_the_worker)
    if cancelled is None:  # it finished meanwhile
        return await get_reply(uow, user_id, room_id, reply_id)
    log.info("chat.reply_stopped", reply_id=str(reply_id), chars=len(cancelled.content))
    return cancelled


async def apply_title(
    uow: UnitOfWork, ctx: ChatContext, room_id: uuid.UUID, user_id: uuid.UUID, title: str
) -> bool:
    """Rename a room to its suggested title, unless the user named it meanwhile. Runs in
    the caller's (the event handler's) transaction."""
    name = " ".join(title.split())[: ctx.settings.chatroom_name_max_chars]
    if not name or not await repository.set_auto_title(uow.conn, room_id, user_id, name):
        return False
    _invalidate_after_commit(uow, ctx, user_id)
    return True


async def get_reply(
    uow: UnitOfWork, user_id: uuid.UUID, room_id: uuid.UUID, reply_id: uuid.UUID
) -> Message:
    async with uow:
        reply = await repository.get_message(uow.conn, reply_id, room_id, user_id)
    if reply is None or reply.role != "GEMINI":
        raise NotFound("Reply not found.", code="reply_not_found")
    return reply


# -- the reconciler ----------------------------------------------------------------------

REDIS_ALIVE_KEY = "chat:redis-alive"


async def redis_lost_data(redis: Redis) -> bool:
    """True when Redis no longer has the marker this service keeps there: it restarted
    without persistence or was flushed, and events it held may be gone."""
    return bool(await redis.set(REDIS_ALIVE_KEY, "1", nx=True))


async def requeue_stale_replies(
    uow: UnitOfWork, settings: Settings, queued_before: datetime, *, batch: int = 100
) -> int:
    """Queue again one batch of pending replies last queued before ``queued_before`` (their
    event was lost, or no worker answered); fail them after ``max_requeues``, giving the
    quota unit back. Returns how many it looked at."""
    async with uow:
        stale = await repository.stale_pending_replies(uow.conn, queued_before, batch)
        for reply in stale:
            if reply.attempts > settings.max_requeues:
                await fail_reply(
                    uow,
                    reply.id,
                    status="failed",
                    code="timeout",
                    message="Gemini did not answer in time. Your prompt was not counted; "
                    "please try again.",
                )
                continue
            prompt = (
                await repository.get_message_by_id(uow.conn, reply.reply_to)
                if reply.reply_to
                else None
            )
            if prompt is None:  # cannot be asked again without its prompt
                await fail_reply(
                    uow, reply.id, status="failed", code="prompt_missing", message="Lost prompt."
                )
                continue
            attempt = await repository.mark_requeued(uow.conn, reply.id)
            await _queue(uow, settings, prompt, reply, attempt, None)
            log.warning("chat.reply_requeued", reply_id=str(reply.id), attempt=attempt)
    return len(stale)


# -- handlers' use cases -------------------------------------------------------------------


async def fail_reply(
    uow: UnitOfWork,
    reply_id: uuid.UUID,
    *,
    status: str,
    code: str,
    message: str,
    partial_text: str = "",
) -> None:
    reply = await repository.fail_reply(
        uow.conn, reply_id, status=status, code=code, message=message, partial_text=partial_text
    )
    if reply is None:
        return
    # A failure is ours or the model's: the prompt is not counted. A safety block is the
    # prompt's own outcome and stays counted.
    if status == "failed" and reply.quota_day is not None:
        await repository.give_back_quota_unit(uow.conn, reply.user_id, reply.quota_day)
    log.info("chat.reply_failed", reply_id=str(reply_id), status=status, code=code)
