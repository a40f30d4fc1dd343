"""Export: a chatroom as a Markdown or JSON file for its owner to download."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from chat import repository
from chat.repository import Chatroom, Message
from chat.rooms import room_not_found
from chat.settings import Settings
from shared.db import Database

SPEAKER = {"USER": "You", "GEMINI": "Gemini"}
# What a reply that did not complete says in the Markdown, after any text it has.
NOT_COMPLETED = {
    "queued": "still being generated",
    "failed": "failed",
    "blocked": "blocked by safety filters",
    "cancelled": "stopped",
}


@dataclass(frozen=True)
class Export:
    room: Chatroom
    messages: list[Message]  # oldest first
    truncated: bool  # older messages were left out (``EXPORT_MAX_MESSAGES``)
    exported_at: datetime


async def export_chatroom(
    db: Database, settings: Settings, user_id: uuid.UUID, room_id: uuid.UUID
) -> Export:
    """The room and its messages (replaced replies left out); 404 for another user's room."""
    limit = settings.export_max_messages
    async with db.transaction() as tx:
        room = await repository.get_chatroom(tx.conn, room_id, user_id)
        if room is None:
            raise room_not_found()
        messages = await repository.exported_messages(tx.conn, room_id, limit + 1)
    truncated = len(messages) > limit
    return Export(room, messages[1:] if truncated else messages, truncated, datetime.now(UTC))


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def as_markdown(export: Export) -> str:
    """A heading for the room, then a heading per turn (who and when) and its text."""
    count = len(export.messages)
    lines = [
        f"# {export.room.name}",
        "",
        f"Exported from Gemini on {_when(export.exported_at)}: {count} messages"
        + (", the latest only." if export.truncated else "."),
    ]
    for message in export.messages:
        lines += ["", f"## {SPEAKER[message.role]} · {_when(message.created_at)}", ""]
        if message.content:
            lines.append(message.content)
        if message.status in NOT_COMPLETED:
            note = NOT_COMPLETED[message.status]
            detail = f": {message.error}" if message.error else ""
            lines += ["", f"_(This reply {note}{detail})_"]
    return "\n".join(lines) + "\n"


def filename(room: Chatroom, extension: str) -> str:
    """An ASCII file name from the room's name: ``yoga-notes.md``."""
    slug = re.sub(r"[^a-z0-9]+", "-", room.name.lower()).strip("-")[:60].strip("-")
    return f"{slug or 'chat'}.{extension}"
