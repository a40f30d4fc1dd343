"""The event catalog (DESIGN §4). Adding a field with a default is compatible; anything
else is a new VERSION with an upcaster from the previous one (see envelope.upcaster)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.events.envelope import Event, EventModel, register


class HistoryTurn(EventModel):
    role: Literal["user", "model"]
    text: str


class TokenUsage(EventModel):
    prompt_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


@register
class UserRegistered(Event):
    """auth: a new account exists."""

    user_id: uuid.UUID
    mobile_number: str
    registered_at: datetime


@register
class MessageQueued(Event):
    """chat: a prompt was accepted and its reply placeholder is waiting for the model.

    Carries everything the worker needs, so the worker reads no database: the prompt and
    the conversation before it (bounded, oldest turns dropped first, never the prompt).
    """

    reply_id: uuid.UUID
    message_id: uuid.UUID
    chatroom_id: uuid.UUID
    user_id: uuid.UUID
    prompt: str
    history: list[HistoryTurn] = Field(default_factory=list)
    attempt: int = Field(default=1, ge=1, description="1, then 2.. when re-queued")
    want_title: bool = Field(
        default=False, description="the chatroom awaits an automatic title from this exchange"
    )
    model: str | None = Field(
        default=None,
        max_length=200,
        description="the Gemini model to ask: the user's tier's, or the chatroom's choice"
        " among those its tier allows (None: the worker's GEMINI_MODEL)",
    )


@register
class ReplyCompleted(Event):
    """ai-worker: the model answered."""

    reply_id: uuid.UUID
    chatroom_id: uuid.UUID
    user_id: uuid.UUID
    text: str
    finish_reason: str
    usage: TokenUsage = Field(default_factory=TokenUsage)
    model: str | None = None


@register
class ReplyFailed(Event):
    """ai-worker: no answer. ``status`` is ``blocked`` for a safety block, else ``failed``."""

    reply_id: uuid.UUID
    chatroom_id: uuid.UUID
    user_id: uuid.UUID
    status: Literal["failed", "blocked"]
    reason: str = Field(description="machine-readable: safety_block, model_error, ...")
    message: str = Field(description="readable by the user")
    partial_text: str = ""


@register
class ChatroomTitleSuggested(Event):
    """ai-worker: a short title for a chatroom, from its first exchange."""

    chatroom_id: uuid.UUID
    user_id: uuid.UUID
    title: str = Field(min_length=1, max_length=100)


@register
class UserDeleted(Event):
    """auth: an account was deleted (DELETE /user/me). Every service erases what it holds
    of the user (each consumer idempotently: a second delivery finds nothing left). Carries
    the id only: the event outlives the account in the stream, the number must not."""

    user_id: uuid.UUID
    deleted_at: datetime


@register
class SubscriptionChanged(Event):
    """billing: the user's subscription state changed. Carries enough for a consumer to
    derive the tier itself at any later time (shared.tiers.derive_tier); ``as_of`` orders
    changes, so a consumer ignores one older than what it already has."""

    user_id: uuid.UUID
    tier: Literal["BASIC", "PRO"]
    status: str
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    # While past_due: PRO until this instant (billing's grace period), BASIC after.
    grace_until: datetime | None = None
    as_of: datetime
