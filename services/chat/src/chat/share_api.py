"""Share and export routes: a room's read-only link (made, revoked, read without logging
in) and its download as Markdown or JSON."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from chat import export, shares
from chat.api import message_out, path_uuid, room_out
from chat.settings import Settings
from chat.share_schemas import (
    MARKDOWN_EXAMPLE,
    ChatExport,
    ShareCreatedData,
    ShareCreatedOut,
    SharedChat,
    SharedChatData,
    SharedChatOut,
    ShareRef,
)
from shared.db import Db
from shared.http import redact_path
from shared.schemas import error_responses
from shared.security import CurrentUserId, from_app_state

AppSettings = Annotated[Settings, Depends(from_app_state("settings"))]
# A snapshot is read by whoever holds the link: never from a shared cache, never sent on
# as a Referer, never indexed.
PUBLIC_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}

router = APIRouter(prefix="/api/v1", tags=["share"])


@router.post(
    "/chatroom/{chatroom_id}/share",
    status_code=201,
    response_model=ShareCreatedOut,
    responses=error_responses(401, 404, 409),
)
async def share_chatroom(
    chatroom_id: str, user: CurrentUserId, db: Db, settings: AppSettings
) -> ShareCreatedOut:
    """A read-only snapshot of the room at a new random link, `/s/{token}`, that anyone
    holding it can open without logging in: the messages up to the last completed reply,
    without ids, user id or phone number. Later messages never appear in it. The token is
    returned only here. A room has one live link: sharing again revokes the previous one.
    409 `nothing_to_share` before the first completed reply."""
    made = await shares.share_chatroom(db, settings, user, path_uuid(chatroom_id))
    ref = ShareRef(
        token=made.token,
        path=shares.share_path(made.token),
        created_at=made.share.created_at,
        message_count=made.message_count,
    )
    return ShareCreatedOut(message="Share link created.", data=ShareCreatedData(share=ref))


@router.delete(
    "/chatroom/{chatroom_id}/share",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 404),
)
async def revoke_share(chatroom_id: str, user: CurrentUserId, db: Db) -> Response:
    """The room's link stops working (404) at once. 204 also when it had none."""
    await shares.revoke_share(db, user, path_uuid(chatroom_id))
    return Response(status_code=204)


@router.get(
    "/shared/{token}",
    response_model=SharedChatOut,
    responses=error_responses(404),
)
async def read_shared_chat(
    token: Annotated[str, Path(max_length=64)], request: Request, response: Response, db: Db
) -> SharedChatOut:
    """The snapshot behind a share link, without logging in (what the page `/s/{token}`
    shows). 404 `share_not_found` for an unknown or revoked link alike."""
    redact_path(request.scope, "/api/v1/shared/{token}")
    share = await shares.read_share(db, token)
    response.headers.update(PUBLIC_HEADERS)
    snapshot = share.snapshot
    shared = SharedChat(
        title=snapshot["title"], created_at=share.created_at, messages=snapshot["messages"]
    )
    return SharedChatOut(data=SharedChatData(share=shared))


@router.get(
    "/chatroom/{chatroom_id}/export",
    response_class=Response,
    responses={
        200: {
            "description": "The chat as a file (`Content-Disposition: attachment`).",
            "model": ChatExport,
            "content": {
                "text/markdown": {"schema": {"type": "string"}, "example": MARKDOWN_EXAMPLE}
            },
        },
        **error_responses(400, 401, 404),
    },
)
async def export_chatroom(
    chatroom_id: str,
    user: CurrentUserId,
    db: Db,
    settings: AppSettings,
    format: Annotated[Literal["md", "json"], Query(description="`md` or `json`.")] = "md",
) -> Response:
    """Download the room: Markdown (a heading per turn: who and when) or JSON (the room and
    its messages, no envelope). Replaced replies are left out; at most the latest
    `EXPORT_MAX_MESSAGES` messages."""
    found = await export.export_chatroom(db, settings, user, path_uuid(chatroom_id))
    if format == "md":
        body, media_type = export.as_markdown(found), "text/markdown; charset=utf-8"
    else:
        file = ChatExport(
            chatroom=room_out(found.room),
            exported_at=found.exported_at,
            truncated=found.truncated,
            messages=[message_out(m) for m in found.messages],
        )
        body, media_type = file.model_dump_json(by_alias=True), "application/json"
    disposition = f'attachment; filename="{export.filename(found.room, format)}"'
    return Response(body, media_type=media_type, headers={"Content-Disposition": disposition})
