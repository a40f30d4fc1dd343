"""The Gemini model of a plan and of a chat: which ones the caller's tier allows, and a
chat's choice among them."""

from __future__ import annotations

from fastapi import APIRouter

from chat import models
from chat.api import Ctx, path_uuid, room_out
from chat.schemas import ChatroomData, ChatroomModelIn, ChatroomOutEnvelope, ModelsData, ModelsOut
from shared.db import Db
from shared.schemas import error_responses
from shared.security import CurrentUserId

router = APIRouter(prefix="/api/v1", tags=["chat"])


@router.put(
    "/chatroom/{chatroom_id}/model",
    response_model=ChatroomOutEnvelope,
    responses=error_responses(400, 401, 404),
)
async def choose_model(
    chatroom_id: str, body: ChatroomModelIn, user: CurrentUserId, db: Db, ctx: Ctx
) -> ChatroomOutEnvelope:
    """The model that answers the room's next prompts, among those the caller's tier allows
    (`GET /models`); null goes back to the tier's own."""
    room = await models.choose(db, ctx, user, path_uuid(chatroom_id), body.model)
    return ChatroomOutEnvelope(data=ChatroomData(chatroom=room_out(room)))


@router.get("/models", response_model=ModelsOut, responses=error_responses(401))
async def get_models(user: CurrentUserId, db: Db, ctx: Ctx) -> ModelsOut:
    """The Gemini models of the caller's tier: its own (`default`) and what a room may
    choose."""
    found = await models.available(db, ctx, user)
    return ModelsOut(data=ModelsData(tier=found.tier, default=found.default, allowed=found.allowed))
