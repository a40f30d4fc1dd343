"""Chat routes: parse the request, call the use case, shape the response."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

from asgi_correlation_id.context import correlation_id
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sse_starlette import EventSourceResponse

from chat import list_cache, metrics, prompts, quota, rooms, stream_slots, streaming
from chat.context import ChatContext
from chat.repository import Chatroom, Message
from chat.schemas import (
    ChatroomCreatedOut,
    ChatroomData,
    ChatroomDetailData,
    ChatroomDetailOut,
    ChatroomIn,
    ChatroomListData,
    ChatroomListOut,
    ChatroomOut,
    ChatroomOutEnvelope,
    ChatroomWithMessages,
    MessageIn,
    MessageOut,
    MessageQueuedData,
    MessageQueuedOut,
    NewChatroomIn,
    RegeneratedData,
    RegeneratedOut,
    ReplyData,
    ReplyOut,
    ReplyRef,
    UsageData,
    UsageOut,
)
from shared.db import Database, Db
from shared.errors import Conflict, NotFound
from shared.schemas import error_responses
from shared.security import CurrentUserId, from_app_state

Ctx = Annotated[ChatContext, Depends(from_app_state("chat"))]


# What a malformed id in the path is: the 404 of the thing it names.
_NOT_FOUND: dict[str, Callable[[], NotFound]] = {
    "Chatroom": rooms.room_not_found,
    "Message": lambda: NotFound(
        "Message not found or you do not have access to it.", code="message_not_found"
    ),
    "Reply": lambda: NotFound(
        "Reply not found or you do not have access to it.", code="reply_not_found"
    ),
}


def path_uuid(value: str, what: str = "Chatroom") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _NOT_FOUND[what]() from None


def room_out(room: Chatroom) -> ChatroomOut:
    return ChatroomOut(
        id=str(room.id),
        name=room.name,
        user_id=str(room.user_id),
        created_at=room.created_at,
        updated_at=room.updated_at,
        model=room.model,
    )


def message_out(message: Message, siblings: list[uuid.UUID] | None = None) -> MessageOut:
    return MessageOut(
        id=str(message.id),
        chatroom_id=str(message.chatroom_id),
        role=message.role,
        content=message.content,
        status=message.status,
        created_at=message.created_at,
        completed_at=message.completed_at,
        reply_to=str(message.reply_to) if message.reply_to else None,
        error=message.error,
        error_code=message.error_code,
        superseded_by=str(message.superseded_by) if message.superseded_by else None,
        model=message.model,
        parent_id=str(message.parent_id) if message.parent_id else None,
        sibling_ids=[str(s) for s in siblings] if siblings else None,
    )


def stream_url(message: Message) -> str:
    return f"/api/v1/chatroom/{message.chatroom_id}/message/{message.id}/stream"


def queued_out(queued: prompts.QueuedPrompt, response: Response) -> MessageQueuedOut:
    """A send's (or an edit's) 201: the prompt and its queued reply, with the quota's
    rate-limit headers."""
    metrics.PROMPTS.labels("accepted").inc()
    response.headers.update(quota.rate_limit_headers(queued.usage))
    return MessageQueuedOut(
        message="Message sent and queued for AI response.",
        data=MessageQueuedData(message=message_out(queued.prompt), reply=reply_ref(queued.reply)),
    )


def reply_ref(reply: Message) -> ReplyRef:
    """A queued reply, as a send or a regenerate answers it."""
    return ReplyRef(
        id=str(reply.id), status=reply.status, stream_url=stream_url(reply), model=reply.model
    )


router = APIRouter(prefix="/api/v1", tags=["chat"])


def _room_link(operation_id: str) -> dict[str, object]:
    """An OpenAPI link from the created room to an operation on it, by its id (for
    readers, and for schemathesis' stateful tests)."""
    return {
        "operationId": operation_id,
        "parameters": {"chatroom_id": "$response.body#/data/chatroom/id"},
    }


ROOM_LINKS = {
    "GetChatroom": _room_link("get_chatroom"),
    "RenameChatroom": _room_link("rename_chatroom"),
    "DeleteChatroom": _room_link("delete_chatroom"),
    "SendMessage": _room_link("send_message"),
}


@router.post(
    "/chatroom",
    status_code=201,
    response_model=ChatroomCreatedOut,
    responses={201: {"links": ROOM_LINKS}, **error_responses(400, 401, 409)},
)
async def create_chatroom(
    user: CurrentUserId, db: Db, ctx: Ctx, body: NewChatroomIn | None = None
) -> ChatroomCreatedOut:
    room = await rooms.create_chatroom(db, ctx, user, body.name if body else None)
    return ChatroomCreatedOut(
        message="Chatroom created successfully.", data=ChatroomData(chatroom=room_out(room))
    )


@router.get("/chatroom", response_model=ChatroomListOut, responses=error_responses(400, 401))
async def list_chatrooms(
    user: CurrentUserId,
    db: Db,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    lookup = await list_cache.read(ctx, user, limit) if cursor is None else list_cache.MISS
    if lookup.body is not None:
        # The body as rendered before: not parsed and rendered again on every read.
        return Response(lookup.body, media_type="application/json")
    found, next_cursor = await rooms.list_chatrooms(db, user, limit, cursor)
    page = ChatroomListOut(
        results=len(found),
        data=ChatroomListData(chatrooms=[room_out(r) for r in found], next_cursor=next_cursor),
    ).model_dump_json(by_alias=True)
    await list_cache.store(ctx, lookup, page)
    return Response(page, media_type="application/json")


@router.get(
    "/chatroom/{chatroom_id}",
    response_model=ChatroomDetailOut,
    responses=error_responses(400, 401, 404),
)
async def get_chatroom(
    chatroom_id: str,
    user: CurrentUserId,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> ChatroomDetailOut:
    before_id = path_uuid(before, "Message") if before else None
    view = await rooms.get_chatroom(db, user, path_uuid(chatroom_id), limit, before_id)
    return detail_out(view)


def detail_out(view: rooms.RoomView) -> ChatroomDetailOut:
    detail = ChatroomWithMessages(
        **room_out(view.room).model_dump(),
        messages=[message_out(m, view.siblings.get(m.id)) for m in view.messages],
        has_more=view.has_more,
    )
    return ChatroomDetailOut(data=ChatroomDetailData(chatroom=detail))


@router.patch(
    "/chatroom/{chatroom_id}",
    response_model=ChatroomOutEnvelope,
    responses=error_responses(400, 401, 404),
)
async def rename_chatroom(
    chatroom_id: str, body: ChatroomIn, user: CurrentUserId, db: Db, ctx: Ctx
) -> ChatroomOutEnvelope:
    room = await rooms.rename_chatroom(db, ctx, user, path_uuid(chatroom_id), body.name)
    return ChatroomOutEnvelope(data=ChatroomData(chatroom=room_out(room)))


@router.delete(
    "/chatroom/{chatroom_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 404),
)
async def delete_chatroom(chatroom_id: str, user: CurrentUserId, db: Db, ctx: Ctx) -> Response:
    await rooms.delete_chatroom(db, ctx, user, path_uuid(chatroom_id))
    return Response(status_code=204)


@router.post(
    "/chatroom/{chatroom_id}/message",
    status_code=201,
    response_model=MessageQueuedOut,
    responses=error_responses(400, 401, 404, 409, 429),
)
async def send_message(
    chatroom_id: str, body: MessageIn, response: Response, user: CurrentUserId, db: Db, ctx: Ctx
) -> MessageQueuedOut:
    try:
        queued = await prompts.queue_message(
            db, ctx, user, path_uuid(chatroom_id), body.content, correlation_id.get()
        )
    except quota.DailyLimitReached:
        metrics.PROMPTS.labels("daily_limit").inc()
        raise
    except Conflict as exc:
        if exc.code == "reply_pending":
            metrics.PROMPTS.labels("reply_pending").inc()
        raise
    return queued_out(queued, response)


@router.post(
    "/chatroom/{chatroom_id}/message/{reply_id}/stop",
    response_model=ReplyOut,
    responses=error_responses(401, 404),
)
async def stop_reply(
    chatroom_id: str, reply_id: str, user: CurrentUserId, db: Db, ctx: Ctx
) -> ReplyOut:
    """Stop a reply being generated: it ends ``cancelled`` with the text so far. A reply
    that already finished is returned as it is."""
    reply = await prompts.stop_reply(
        db, ctx, user, path_uuid(chatroom_id), path_uuid(reply_id, "Reply")
    )
    return ReplyOut(message="Reply stopped.", data=ReplyData(reply=message_out(reply)))


@router.post(
    "/chatroom/{chatroom_id}/message/{reply_id}/regenerate",
    status_code=201,
    response_model=RegeneratedOut,
    responses=error_responses(401, 404, 409, 429),
)
async def regenerate_reply(
    chatroom_id: str, reply_id: str, response: Response, user: CurrentUserId, db: Db, ctx: Ctx
) -> RegeneratedOut:
    """A new reply to the same prompt (the quota applies); the old one is kept, marked
    ``supersededBy`` the new one. Only the room's last reply, once it is final."""
    room_id, old_id = path_uuid(chatroom_id), path_uuid(reply_id, "Reply")
    queued = await prompts.regenerate_reply(db, ctx, user, room_id, old_id, correlation_id.get())
    response.headers.update(quota.rate_limit_headers(queued.usage))
    previous = await prompts.get_reply(db, user, room_id, old_id)
    reply = queued.reply
    return RegeneratedOut(
        message="Regenerating the reply.",
        data=RegeneratedData(
            reply=reply_ref(reply),
            previous=message_out(previous),
        ),
    )


@router.get(
    "/chatroom/{chatroom_id}/message/{reply_id}/stream",
    response_class=EventSourceResponse,
    responses={
        200: streaming.STREAM_RESPONSE,
        **error_responses(400, 401, 404, 429, 503),
    },
)
async def stream_reply(
    chatroom_id: str,
    reply_id: str,
    request: Request,
    user: CurrentUserId,
    ctx: Ctx,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="Resume after this event: the id of a token event of this stream.",
        ),
    ] = None,
) -> EventSourceResponse:
    """429 ``too_many_streams`` when the user has ``MAX_STREAMS_PER_USER`` streams open;
    503 ``streams_unavailable`` when this server cannot take another one."""
    room_id, reply_uuid = path_uuid(chatroom_id), path_uuid(reply_id, "Reply")
    resume_after = streaming.parse_last_event_id(last_event_id)
    pool = request.app.state.pool

    async def load() -> Message:
        return await prompts.get_reply(Database(pool), user, room_id, reply_uuid)

    reply = await load()  # 404 before the stream starts
    lease = await ctx.streams.take(user)  # and 429/503
    events = streaming.reply_events(
        ctx.redis,
        reply_uuid,
        load,
        lambda m: message_out(m).model_dump(mode="json", by_alias=True),
        resume_after,
        keep_going=lambda: lease.held,
        loaded=reply,
    )
    return stream_slots.LeasedEventSourceResponse(
        events,
        lease,
        ping=ctx.settings.sse_ping_seconds,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/usage", response_model=UsageOut, responses=error_responses(401))
async def get_usage(user: CurrentUserId, db: Db, ctx: Ctx) -> UsageOut:
    usage = await quota.usage(db, ctx, user)
    return UsageOut(
        data=UsageData(
            tier=usage.tier,
            limit=usage.limit,
            used=usage.used,
            remaining=usage.remaining,
            resets_at=usage.resets_at,
        )
    )
