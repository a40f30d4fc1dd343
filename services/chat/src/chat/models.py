"""Which Gemini model answers a prompt: each tier has its own (GEMINI_MODEL_BASIC,
GEMINI_MODEL_PRO); Pro may also choose Basic's, per chatroom. The choice is read when a
prompt is sent, so a tier change (SubscriptionChanged) applies from the next prompt, and a
room's choice its tier no longer allows falls back to the tier's own."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from chat import list_cache, repository
from chat.context import ChatContext
from chat.quota import tier_of
from chat.repository import Chatroom
from chat.rooms import room_not_found
from chat.settings import Settings
from shared.db import Database
from shared.errors import ValidationFailed
from shared.tiers import Tier


@dataclass(frozen=True)
class Models:
    tier: Tier
    default: str  # the tier's own
    allowed: list[str]  # the default first


class ModelNotAllowed(ValidationFailed):
    code = "model_not_allowed"

    def __init__(self, models: Models) -> None:
        message = f"Not a model of your plan; choose one of: {', '.join(models.allowed)}."
        super().__init__(
            f"Invalid request: model: {message}",
            errors=[{"field": "model", "message": message}],
            extra={"allowed": models.allowed},
        )


def models_for(settings: Settings, tier: Tier) -> Models:
    if tier == "PRO":
        allowed = list(dict.fromkeys([settings.gemini_model_pro, settings.gemini_model_basic]))
        return Models(tier, settings.gemini_model_pro, allowed)
    return Models(tier, settings.gemini_model_basic, [settings.gemini_model_basic])


def model_for_reply(settings: Settings, tier: Tier, room: Chatroom) -> str:
    """The model a new reply in ``room`` is asked of."""
    models = models_for(settings, tier)
    return room.model if room.model in models.allowed else models.default


async def available(db: Database, ctx: ChatContext, user_id: uuid.UUID) -> Models:
    async with db.transaction() as tx:
        tier = await tier_of(tx, user_id, datetime.now(UTC))
    return models_for(ctx.settings, tier)


async def choose(
    db: Database, ctx: ChatContext, user_id: uuid.UUID, room_id: uuid.UUID, model: str | None
) -> Chatroom:
    """Set the room's model (None: its tier's own, whatever the tier becomes); 400 for a
    model the user's tier does not allow."""
    async with db.transaction() as tx:
        if model is not None:
            models = models_for(ctx.settings, await tier_of(tx, user_id, datetime.now(UTC)))
            if model not in models.allowed:
                raise ModelNotAllowed(models)
        room = await repository.set_chatroom_model(tx.conn, room_id, user_id, model)
        if room is None:
            raise room_not_found()
        list_cache.invalidate_after_commit(tx, ctx, user_id)
    return room
