"""Request and response bodies of the chat API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, computed_field

from chat.repository import MessageStatus, Role
from shared.schemas import CamelModel, examples

_USER_ID = "5d6f8a2e-1c3b-4e7a-9f0d-2b4c6e8a0f13"
_ROOM_ID = "0b6f1f5c-2d1e-4b8a-9c3d-7e5f4a3b2c1d"
_AT = "2026-12-01T09:00:00Z"
_CURSOR = (
    "WyIyMDI2LTEyLTAxVDA5OjAwOjAwKzAwOjAwIiwgIjBiNmYxZjVjLTJkMWUtNGI4YS05YzNkLTdlNWY0YTNiMmMxZCJd"
)
_ROOM = {
    "id": _ROOM_ID,
    "name": "chatroom 01 basic",
    "userId": _USER_ID,
    "createdAt": _AT,
    "updatedAt": _AT,
    "model": None,
}
_PROMPT = {
    "id": "8e2d4c6a-0b1f-4a3e-8d5c-7f9a1b3c5e70",
    "chatroomId": _ROOM_ID,
    "chatRoomId": _ROOM_ID,
    "role": "USER",
    "content": "what is yoga?",
    "status": "completed",
    "createdAt": _AT,
    "completedAt": _AT,
}
_REPLY_ID = "3f0c6a1e-8a6b-4c47-9d0e-2b1f5e7c9a10"
_REPLY = {
    "id": _REPLY_ID,
    "chatroomId": _ROOM_ID,
    "chatRoomId": _ROOM_ID,
    "role": "GEMINI",
    "content": "Yoga is a practice.",
    "status": "completed",
    "createdAt": _AT,
    "completedAt": "2026-12-01T09:00:02Z",
    "replyTo": _PROMPT["id"],
    "model": "gemini-2.5-flash",
}
_NEW_REPLY = {
    "id": "a47c2e9b-6d3f-4b1a-8e5c-0f2d4b6a8c91",
    "status": "queued",
    "streamUrl": f"/api/v1/chatroom/{_ROOM_ID}/message/a47c2e9b-6d3f-4b1a-8e5c-0f2d4b6a8c91/stream",
    "model": "gemini-2.5-flash",
}


class ChatroomIn(CamelModel):
    model_config = examples({"name": "chatroom 01 basic"})

    name: str = Field(min_length=1, max_length=1000, examples=["chatroom 01 basic"])


class ChatroomModelIn(CamelModel):
    model_config = examples({"model": "gemini-2.5-pro"})

    model: str | None = Field(
        min_length=1,
        max_length=200,
        description="One of GET /models' `allowed`; null: the tier's own, whatever it becomes.",
    )


class NewChatroomIn(CamelModel):
    model_config = examples({"name": "chatroom 01 basic"})

    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description='Omitted: "New chat", titled automatically after the first exchange.',
    )


class BranchIn(CamelModel):
    model_config = examples({"messageId": "8e2d4c6a-0b1f-4a3e-8d5c-7f9a1b3c5e70"})

    message_id: str = Field(
        min_length=1, max_length=64, description="A message of the room: its branch is shown."
    )


class MessageIn(CamelModel):
    model_config = examples({"content": "what is yoga?"})

    content: str = Field(min_length=1, max_length=100_000, examples=["what is yoga?"])


class ChatroomOut(CamelModel):
    id: str
    name: str
    user_id: str
    created_at: datetime
    updated_at: datetime
    model: str | None = Field(
        default=None,
        description="The Gemini model the room chose (PUT .../model); null: its tier's own.",
    )


class MessageOut(CamelModel):
    id: str
    chatroom_id: str
    role: Role
    content: str
    status: MessageStatus
    created_at: datetime
    completed_at: datetime | None = None
    reply_to: str | None = None
    error: str | None = None
    error_code: str | None = None
    superseded_by: str | None = Field(
        default=None, description="The reply that regenerated this one (this one is history)."
    )
    model: str | None = Field(
        default=None,
        description="A reply's: the Gemini model asked. Null for prompts and older replies.",
    )
    parent_id: str | None = Field(
        default=None,
        description="What it follows on its branch: a reply's prompt, a prompt's reply"
        " (null for a chat's first prompt).",
    )
    sibling_ids: list[str] | None = Field(
        default=None,
        description="In a chatroom's path: every version of this message, oldest first, when"
        " there is more than one (an edited prompt's, a regenerated reply's). PUT .../branch"
        " with one of them shows its branch.",
    )

    @computed_field  # type: ignore[prop-decorator]  # mypy refuses decorated properties; pydantic's way
    @property
    def chat_room_id(self) -> str:
        """``chatroomId`` under the Node service's name, which its clients read."""
        return self.chatroom_id


class ChatroomWithMessages(ChatroomOut):
    messages: list[MessageOut]
    has_more: bool = Field(description="Older messages exist: pass the first id as ?before=")


class ChatroomData(CamelModel):
    chatroom: ChatroomOut


class ChatroomCreatedOut(CamelModel):
    model_config = examples(
        {
            "status": "success",
            "message": "Chatroom created successfully.",
            "data": {"chatroom": _ROOM},
        }
    )

    status: Literal["success"] = "success"
    message: str
    data: ChatroomData


class ChatroomOutEnvelope(CamelModel):
    model_config = examples({"status": "success", "data": {"chatroom": _ROOM}})

    status: Literal["success"] = "success"
    data: ChatroomData


class ChatroomDetailData(CamelModel):
    chatroom: ChatroomWithMessages


class ChatroomDetailOut(CamelModel):
    model_config = examples(
        {
            "status": "success",
            "data": {"chatroom": {**_ROOM, "messages": [_PROMPT, _REPLY], "hasMore": False}},
        }
    )

    status: Literal["success"] = "success"
    data: ChatroomDetailData


class ChatroomListData(CamelModel):
    chatrooms: list[ChatroomOut]
    next_cursor: str | None


class ChatroomListOut(CamelModel):
    model_config = examples(
        {
            "status": "success",
            "results": 1,
            "data": {
                "chatrooms": [_ROOM],
                "nextCursor": _CURSOR,
            },
        }
    )

    status: Literal["success"] = "success"
    results: int
    data: ChatroomListData


class ReplyRef(CamelModel):
    id: str
    status: MessageStatus
    stream_url: str
    model: str | None = Field(default=None, description="The Gemini model asked.")


class MessageQueuedData(CamelModel):
    message: MessageOut
    reply: ReplyRef


class MessageQueuedOut(CamelModel):
    model_config = examples(
        {
            "status": "success",
            "message": "Message sent and queued for AI response.",
            "data": {"message": _PROMPT, "reply": _NEW_REPLY},
        }
    )

    status: Literal["success"] = "success"
    message: str
    data: MessageQueuedData


class ReplyData(CamelModel):
    reply: MessageOut


class ReplyOut(CamelModel):
    model_config = examples(
        {
            "status": "success",
            "message": "Reply stopped.",
            "data": {"reply": {**_REPLY, "status": "cancelled"}},
        }
    )

    status: Literal["success"] = "success"
    message: str
    data: ReplyData


class RegeneratedData(CamelModel):
    reply: ReplyRef
    previous: MessageOut


class RegeneratedOut(CamelModel):
    model_config = examples(
        {
            "status": "success",
            "message": "Regenerating the reply.",
            "data": {"reply": _NEW_REPLY, "previous": {**_REPLY, "supersededBy": _NEW_REPLY["id"]}},
        }
    )

    status: Literal["success"] = "success"
    message: str
    data: RegeneratedData


class UsageData(CamelModel):
    tier: Literal["BASIC", "PRO"]
    limit: int | None = Field(description="Prompts a day; null for Pro (unlimited).")
    used: int
    remaining: int | None
    resets_at: datetime


class UsageOut(CamelModel):
    model_config = examples(
        {
            "status": "success",
            "data": {"tier": "BASIC", "limit": 5, "used": 1, "remaining": 4, "resetsAt": _AT},
        }
    )

    status: Literal["success"] = "success"
    data: UsageData


class ModelsData(CamelModel):
    tier: Literal["BASIC", "PRO"]
    default: str = Field(description="The tier's own model: a room without a choice uses it.")
    allowed: list[str] = Field(description="What a room may choose (PUT .../model).")


class ModelsOut(CamelModel):
    model_config = examples(
        {
            "status": "success",
            "data": {
                "tier": "PRO",
                "default": "gemini-2.5-pro",
                "allowed": ["gemini-2.5-pro", "gemini-2.5-flash"],
            },
        }
    )

    status: Literal["success"] = "success"
    data: ModelsData
