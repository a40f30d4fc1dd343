"""The rows chat's SQL returns, and the column lists that select them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

PENDING = ("queued",)  # a reply not final yet


def pending_sql(alias: str = "") -> str:
    """SQL: the message's status is one of PENDING (``alias``: the messages table's), as
    the partial indexes over pending replies say it."""
    column = f"{alias}.status" if alias else "status"
    return f"{column} = 'queued'"


def still_pending_sql() -> str:
    """SQL: the same test, for a statement that finds its one message by id. Written so the
    planner cannot answer it from the pending-replies indexes: a plan made while the table
    was small, and cached by a prepared statement, would scan every pending reply for the
    id (each completion then costs as much as the backlog is long)."""
    return f"({pending_sql()}) IS TRUE"


# What the messages table's CHECK constraints allow.
Role = Literal["USER", "GEMINI"]
MessageStatus = Literal["queued", "completed", "failed", "blocked", "cancelled"]


@dataclass(frozen=True)
class Chatroom:
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    auto_title: bool
    created_at: datetime
    updated_at: datetime
    model: str | None = None  # the model the room chose; None: its user's tier's
    leaf_id: uuid.UUID | None = None  # the end of the current path (None: no message yet)


@dataclass(frozen=True)
class Message:
    id: uuid.UUID
    seq: int
    chatroom_id: uuid.UUID
    user_id: uuid.UUID
    role: Role
    content: str
    status: MessageStatus
    reply_to: uuid.UUID | None
    error_code: str | None
    error: str | None
    quota_day: date | None
    attempts: int
    superseded_by: uuid.UUID | None
    created_at: datetime
    completed_at: datetime | None
    model: str | None = None  # a reply's: the model asked (None: from before models per tier)
    # A reply's prompt; a prompt's: the reply it follows (None: a first prompt).
    parent_id: uuid.UUID | None = None


ROOM_COLUMNS = "id, user_id, name, auto_title, created_at, updated_at, model, leaf_id"
MESSAGE_COLUMNS = (
    "id, seq, chatroom_id, user_id, role, content, status, reply_to, error_code, error,"
    " quota_day, attempts, superseded_by, created_at, completed_at, model, parent_id"
)
