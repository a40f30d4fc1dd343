"""Share links: a read-only snapshot of a chatroom at a random link, read without logging
in, revocable. Each use case takes the Database and runs its own transaction.

The token is ``secrets.token_urlsafe(32)`` (256 random bits); only its SHA-256 is stored, so
the owner sees it once, when the link is made, and a copy of the database opens nothing.
A room has at most one live link: making another revokes the one before (its token cannot
be shown again, so it cannot be returned again).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from chat import repository
from chat.repository import Message
from chat.repository.shares import Share
from chat.rooms import room_not_found
from chat.settings import Settings
from shared.db import Database
from shared.errors import Conflict, NotFound

log = structlog.get_logger(__name__)

TOKEN_BYTES = 32
# What secrets.token_urlsafe(TOKEN_BYTES) returns: 43 characters of base64url.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")


def share_path(token: str) -> str:
    """Where the gateway serves the snapshot page."""
    return f"/s/{token}"


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def share_not_found() -> NotFound:
    return NotFound("This link does not exist or was revoked.", code="share_not_found")


class NothingToShare(Conflict):
    code = "nothing_to_share"
    message = "Nothing to share yet: the chat has no completed reply."


@dataclass(frozen=True)
class NewShare:
    token: str
    share: Share
    message_count: int


def snapshot_of(name: str, messages: list[Message]) -> dict[str, Any]:
    """What the link shows: the title and each turn's role, text and time. No ids, and
    nothing about the user."""
    return {
        "title": name,
        "messages": [
            {"role": m.role, "content": m.content, "createdAt": m.created_at.isoformat()}
            for m in messages
        ],
    }


async def share_chatroom(
    db: Database, settings: Settings, user_id: uuid.UUID, room_id: uuid.UUID
) -> NewShare:
    """A new link to the room as it is now, up to its last completed reply; the room's
    previous link, if any, is revoked. 404 for another user's room, 409 with nothing to
    share."""
    async with db.transaction() as tx:
        # The row lock makes concurrent shares of one room take turns (one live link).
        room = await repository.get_chatroom(tx.conn, room_id, user_id, lock=True)
        if room is None:
            raise room_not_found()
        messages = await repository.shared_messages(tx.conn, room_id, settings.share_max_messages)
        if not messages:
            raise NothingToShare()
        replaced = await repository.revoke_shares(tx.conn, room_id, user_id)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        share = await repository.insert_share(
            tx.conn,
            share_id=uuid.uuid4(),
            token_hash=token_hash(token),
            room_id=room_id,
            user_id=user_id,
            snapshot=snapshot_of(room.name, messages),
        )
    log.info("chat.chatroom_shared", chatroom_id=str(room_id), replaced=replaced)
    return NewShare(token=token, share=share, message_count=len(messages))


async def revoke_share(db: Database, user_id: uuid.UUID, room_id: uuid.UUID) -> None:
    """The room's link stops working at once; nothing to revoke is not an error."""
    async with db.transaction() as tx:
        if await repository.get_chatroom(tx.conn, room_id, user_id) is None:
            raise room_not_found()
        revoked = await repository.revoke_shares(tx.conn, room_id, user_id)
    log.info("chat.share_revoked", chatroom_id=str(room_id), revoked=revoked)


async def read_share(db: Database, token: str) -> Share:
    """The snapshot behind a live link. Anything else (malformed, unknown, revoked, its
    room deleted) is the same 404. The lookup is by the token's hash, so how long it
    takes says nothing about how close a guess was."""
    if not TOKEN_PATTERN.fullmatch(token):
        raise share_not_found()
    async with db.autocommit() as tx:
        share = await repository.live_share(tx.conn, token_hash(token))
    if share is None:
        raise share_not_found()
    return share
