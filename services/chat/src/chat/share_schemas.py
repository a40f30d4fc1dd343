"""Bodies of the share and export routes (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from chat.repository import Role
from chat.schemas import _AT, _PROMPT, _REPLY, _ROOM, ChatroomOut, MessageOut
from shared.schemas import CamelModel, examples

_TOKEN = "q3V8fJx2L0bM7cR1tY9wN4sK6hD5gA0zE2uP8iO3lXy"


class ShareRef(CamelModel):
    token: str = Field(description="Shown once: only its hash is stored.")
    path: str = Field(description="The read-only page, on the gateway: `/s/{token}`.")
    created_at: datetime
    message_count: int = Field(description="Messages in the snapshot.")


class ShareCreatedData(CamelModel):
    share: ShareRef


class ShareCreatedOut(CamelModel):
    model_config = examples(
        {
            "status": "success",
            "message": "Share link created.",
            "data": {
                "share": {
                    "token": _TOKEN,
                    "path": f"/s/{_TOKEN}",
                    "createdAt": _AT,
                    "messageCount": 2,
                }
            },
        }
    )

    status: Literal["success"] = "success"
    message: str
    data: ShareCreatedData


class SharedMessage(CamelModel):
    role: Role
    content: str
    created_at: datetime


class SharedChat(CamelModel):
    title: str
    created_at: datetime = Field(description="When the link was made: the snapshot's time.")
    messages: list[SharedMessage]


class SharedChatData(CamelModel):
    share: SharedChat


class SharedChatOut(CamelModel):
    model_config = examples(
        {
            "status": "success",
            "data": {
                "share": {
                    "title": _ROOM["name"],
                    "createdAt": _AT,
                    "messages": [
                        {"role": m["role"], "content": m["content"], "createdAt": m["createdAt"]}
                        for m in (_PROMPT, _REPLY)
                    ],
                }
            },
        }
    )

    status: Literal["success"] = "success"
    data: SharedChatData


class ChatExport(CamelModel):
    """The file `?format=json` downloads: no envelope."""

    model_config = examples(
        {
            "chatroom": _ROOM,
            "exportedAt": _AT,
            "truncated": False,
            "messages": [_PROMPT, _REPLY],
        }
    )

    chatroom: ChatroomOut
    exported_at: datetime
    truncated: bool = Field(description="Older messages were left out (`EXPORT_MAX_MESSAGES`).")
    messages: list[MessageOut]


MARKDOWN_EXAMPLE = f"""# {_ROOM["name"]}

Exported from Gemini on 2026-12-01 09:00 UTC: 2 messages.

## You · 2026-12-01 09:00 UTC

{_PROMPT["content"]}

## Gemini · 2026-12-01 09:00 UTC

{_REPLY["content"]}
"""
