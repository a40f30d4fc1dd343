"""Branch routes: edit and resend a prompt, and show another version's branch."""

from __future__ import annotations

from typing import Annotated

from asgi_correlation_id.context import correlation_id
from fastapi import APIRouter, Query, Response

from chat import branches, rooms
from chat.api import Ctx, detail_out, path_uuid, queued_out
from chat.schemas import BranchIn, ChatroomDetailOut, MessageIn, MessageQueuedOut
from shared.db import Db
from shared.schemas import error_responses
from shared.security import CurrentUserId

router = APIRouter(prefix="/api/v1", tags=["chat"])


@router.put(
    "/chatroom/{chatroom_id}/message/{message_id}",
    status_code=201,
    response_model=MessageQueuedOut,
    responses=error_responses(400, 401, 404, 409, 429),
)
async def edit_message(
    chatroom_id: str,
    message_id: str,
    body: MessageIn,
    response: Response,
    user: CurrentUserId,
    db: Db,
    ctx: Ctx,
) -> MessageQueuedOut:
    """Edit and resend a prompt: a new version of it and a new reply, as a send (quota,
    409 while a reply in the room is pending). The earlier version and what followed it
    stay, as a sibling branch (`siblingIds` in `GET /chatroom/{id}`)."""
    queued = await branches.edit_prompt(
        db,
        ctx,
        user,
        path_uuid(chatroom_id),
        path_uuid(message_id, "Message"),
        body.content,
        correlation_id.get(),
    )
    return queued_out(queued, response)


@router.put(
    "/chatroom/{chatroom_id}/branch",
    response_model=ChatroomDetailOut,
    responses=error_responses(400, 401, 404),
)
async def show_branch(
    chatroom_id: str,
    body: BranchIn,
    user: CurrentUserId,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ChatroomDetailOut:
    """Show the branch through `messageId` (one of a message's `siblingIds`): the room's
    current path goes on to the newest message of that branch. Answers the room as
    `GET /chatroom/{id}` does."""
    room_id = path_uuid(chatroom_id)
    await branches.show_branch(db, user, room_id, path_uuid(body.message_id, "Message"))
    return detail_out(await rooms.get_chatroom(db, user, room_id, limit, None))
