"""Chatrooms: create, list, show, rename, delete, and the automatic title. Each use case
takes the Database and runs its own transactions."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

import structlog

from chat import list_cache, repository
from chat.context import ChatContext
from chat.repository import Chatroom, Message
from chat.settings import Settings
from shared.db import Database, Transaction
from shared.errors import Conflict, NotFound, ValidationFailed

log = structlog.get_logger(__name__)


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
    db: Database, ctx: ChatContext, user_id: uuid.UUID, raw_name: str | None
) -> Chatroom:
    """A room; without a name it is "New chat" until its first exchange gives it a title.
    409 when the user already owns ``max_chatrooms_per_user`` rooms."""
    auto_title = raw_name is None
    name = DEFAULT_ROOM_NAME if raw_name is None else _room_name(raw_name, ctx.settings)
    limit = ctx.settings.max_chatrooms_per_user
    async with db.transaction() as tx:
        # Count under a per-user lock: concurrent creates queue up behind it, so no
        # interleaving goes past the limit.
        await repository.lock_user_chatrooms(tx.conn, user_id)
        if await repository.count_chatrooms(tx.conn, user_id) >= limit:
            log.info("chat.chatroom_limit_reached", limit=limit)
            raise ChatroomLimitReached(limit)
        room = await repository.insert_chatroom(tx.conn, uuid.uuid4(), user_id, name, auto_title)
        list_cache.invalidate_after_commit(tx, ctx, user_id)
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
    db: Database, user_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[Chatroom], str | None]:
    """A page of the user's rooms, newest first, and the cursor of the next page (None on
    the last). The API caches the first page's response (``list_cache``)."""
    after = decode_cursor(cursor) if cursor else None
    async with db.transaction() as tx:
        rooms = await repository.list_chatrooms(tx.conn, user_id, limit + 1, after)
    next_cursor = encode_cursor(rooms[limit - 1]) if len(rooms) > limit else None
    return rooms[:limit], next_cursor


@dataclass(frozen=True)
class RoomView:
    room: Chatroom
    messages: list[Message]  # a page of the current path, oldest first
    has_more: bool  # the path goes on before the page
    siblings: dict[uuid.UUID, list[uuid.UUID]]  # of the page's messages that have any


async def get_chatroom(
    db: Database,
    user_id: uuid.UUID,
    room_id: uuid.UUID,
    limit: int,
    before: uuid.UUID | None,
) -> RoomView:
    """The room with the latest ``limit`` messages of its current path (before message
    ``before``), oldest first, whether older ones exist, and the siblings (other versions)
    of those that have any."""
    async with db.transaction() as tx:
        room = await repository.get_chatroom(tx.conn, room_id, user_id)
        if room is None:
            raise room_not_found()
        before_seq = None
        if before is not None:
            anchor = await repository.get_message(tx.conn, before, room_id, user_id)
            if anchor is None:
                raise ValidationFailed.on("before", "No such message in this chatroom.")
            before_seq = anchor.seq
        messages = await repository.path_page(tx.conn, room_id, limit + 1, before_seq)
        has_more = len(messages) > limit
        page = messages[-limit:] if has_more else messages
        siblings = await repository.siblings(tx.conn, room_id, [m.id for m in page])
    return RoomView(room, page, has_more, siblings)


def room_not_found() -> NotFound:
    return NotFound(
        "Chatroom not found or you do not have access to it.", code="chatroom_not_found"
    )


async def rename_chatroom(
    db: Database, ctx: ChatContext, user_id: uuid.UUID, room_id: uuid.UUID, raw_name: str
) -> Chatroom:
    name = _room_name(raw_name, ctx.settings)
    async with db.transaction() as tx:
        room = await repository.rename_chatroom(tx.conn, room_id, user_id, name)
        if room is None:
            raise room_not_found()
        list_cache.invalidate_after_commit(tx, ctx, user_id)
    return room


async def delete_chatroom(
    db: Database, ctx: ChatContext, user_id: uuid.UUID, room_id: uuid.UUID
) -> None:
    async with db.transaction() as tx:
        if not await repository.delete_chatroom(tx.conn, room_id, user_id):
            raise room_not_found()
        list_cache.invalidate_after_commit(tx, ctx, user_id)
    log.info("chat.chatroom_deleted", chatroom_id=str(room_id))


async def apply_title(
    tx: Transaction, ctx: ChatContext, room_id: uuid.UUID, user_id: uuid.UUID, title: str
) -> bool:
    """Rename a room to its suggested title, unless the user named it meanwhile. Runs in
    the caller's (the event handler's) transaction."""
    name = " ".join(title.split())[: ctx.settings.chatroom_name_max_chars]
    if not name or not await repository.set_auto_title(tx.conn, room_id, user_id, name):
        return False
    list_cache.invalidate_after_commit(tx, ctx, user_id)
    return True
