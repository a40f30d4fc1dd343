"""Request and response bodies of the chat API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, computed_field

from chat.repository import MessageStatus, Role
from shared.schemas import CamelModel


class ChatroomIn(CamelModel):
    name: str = Field(min_length=1, max_length=1000, examples=["chatroom 01 basic"])


class NewChatroomIn(CamelModel):
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description='Omitted: "New chat", titled automatically after the first exchange.',
    )


class MessageIn(CamelModel):
    content: str = Field(min_length=1, max_length=100_000, examples=["what is yoga?"])


class ChatroomOut(CamelModel):
    id: str
    name: str
    user_id: str
    created_at: datetime
    updated_at: datetime


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
    status: Literal["success"] = "success"
    message: str
    data: ChatroomData


class ChatroomOutEnvelope(CamelModel):
    status: Literal["success"] = "success"
    data: ChatroomData


class ChatroomDetailData(CamelModel):
    chatroom: ChatroomWithMessages


class ChatroomDetailOut(CamelModel):
    status: Literal["success"] = "success"
    data: ChatroomDetailData


class ChatroomListData(CamelModel):
    chatrooms: list[ChatroomOut]
    next_cursor: str | None


class ChatroomListOut(CamelModel):
    status: Literal["success"] = "success"
    results: int
    data: ChatroomListData


class ReplyRef(CamelModel):
    id: str
    status: MessageStatus
    stream_url: str


class MessageQueuedData(CamelModel):
    message: MessageOut
    reply: ReplyRef


class MessageQueuedOut(CamelModel):
    status: Literal["success"] = "success"
    message: str
    data: MessageQueuedData


class ReplyData(CamelModel):
    reply: MessageOut


class ReplyOut(CamelModel):
    status: Literal["success"] = "success"
    message: str
    data: ReplyData


class RegeneratedData(CamelModel):
    reply: ReplyRef
    previous: MessageOut


class RegeneratedOut(CamelModel):
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
    status: Literal["success"] = "success"
    data: UsageData
