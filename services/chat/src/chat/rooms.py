"""Chatrooms: create, list (with the first page cached), show, rename, delete, and the
automatic title. Each use case takes a unit of work and owns its transaction."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import datetime

import structlog
from redis.exceptions import RedisError

from chat import repository
from chat.context import ChatContext
from chat.repository import Chatroom, Message
from chat.settings import Settings
from shared.db import UnitOfWork
from shared.errors import Conflict, NotFound, ValidationFailed

log = structlog.get_logger(__name__)


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
            raise room_not_found()
        before_seq = None
        if before is not None:
            anchor = await repository.get_message(uow.conn, before, room_id, user_id)
            if anchor is None:
                raise ValidationFailed.on("before", "No such message in this chatroom.")
            before_seq = anchor.seq
        messages = await repository.list_messages(uow.conn, room_id, limit + 1, before_seq)
    has_more = len(messages) > limit
    return room, messages[-limit:] if has_more else messages, has_more


def room_not_found() -> NotFound:
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
            raise room_not_found()
        _invalidate_after_commit(uow, ctx, user_id)
    return room


async def delete_chatroom(
    uow: UnitOfWork, ctx: ChatContext, user_id: uuid.UUID, room_id: uuid.UUID
) -> None:
    async with uow:
        if not await repository.delete_chatroom(uow.conn, room_id, user_id):
            raise room_not_found()
        _invalidate_after_commit(uow, ctx, user_id)
    log.info("chat.chatroom_deleted", chatroom_id=str(room_id))


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
