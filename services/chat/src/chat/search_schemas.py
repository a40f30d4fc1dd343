"""Response body of the search API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from chat.repository.search import HitKind
from shared.schemas import CamelModel, examples

_ROOM_ID = "0b6f1f5c-2d1e-4b8a-9c3d-7e5f4a3b2c1d"
_CURSOR = (
    "WzAuNjA3OTI3MDgzOTY5MTE2MiwgIjIwMjYtMTItMDFUMDk6MDA6MDArMDA6MDAiLCAiMGI2ZjFmNWMtMmQxZS00"
    "YjhhLTljM2QtN2U1ZjRhM2IyYzFkIl0"
)


class SnippetPart(CamelModel):
    # The spaces between a match and its neighbours are part of the text.
    model_config = ConfigDict(str_strip_whitespace=False)

    text: str
    match: bool = Field(description="A word the query matched: show it highlighted.")


class SearchHit(CamelModel):
    kind: HitKind = Field(description="What matched: a prompt, a reply, or a chatroom's title.")
    chatroom_id: str
    chatroom_name: str
    message_id: str | None = Field(
        default=None, description="The prompt or reply; null for a title."
    )
    snippet: list[SnippetPart] = Field(
        description="The matching text around the matches, in pieces: plain text, and the"
        " matched words with match: true. Text only, never markup."
    )
    created_at: datetime


class SearchData(CamelModel):
    query: str = Field(description="The query as searched (runs of whitespace made one).")
    hits: list[SearchHit] = Field(description="Best match first, then newest.")
    next_cursor: str | None


class SearchOut(CamelModel):
    model_config = examples(
        {
            "status": "success",
            "results": 2,
            "data": {
                "query": "yoga",
                "hits": [
                    {
                        "kind": "title",
                        "chatroomId": _ROOM_ID,
                        "chatroomName": "Yoga for beginners",
                        "messageId": None,
                        "snippet": [
                            {"text": "Yoga", "match": True},
                            {"text": " for beginners", "match": False},
                        ],
                        "createdAt": "2026-12-01T09:00:00Z",
                    },
                    {
                        "kind": "reply",
                        "chatroomId": _ROOM_ID,
                        "chatroomName": "Yoga for beginners",
                        "messageId": "3f0c6a1e-8a6b-4c47-9d0e-2b1f5e7c9a10",
                        "snippet": [
                            {"text": "Yoga", "match": True},
                            {"text": " is a practice.", "match": False},
                        ],
                        "createdAt": "2026-12-01T09:00:02Z",
                    },
                ],
                "nextCursor": _CURSOR,
            },
        }
    )

    status: Literal["success"] = "success"
    results: int = Field(description="The number of hits on this page.")
    data: SearchData
