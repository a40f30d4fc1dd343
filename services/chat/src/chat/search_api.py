"""The search route: parse the request, call the use case, shape the response."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chat import search
from chat.search_schemas import SearchData, SearchHit, SearchOut, SnippetPart
from shared.db import Db
from shared.schemas import error_responses
from shared.security import CurrentUserId

router = APIRouter(prefix="/api/v1", tags=["chat"])


def hit_out(found: search.Found) -> SearchHit:
    hit = found.hit
    return SearchHit(
        kind=hit.kind,
        chatroom_id=str(hit.chatroom_id),
        chatroom_name=hit.chatroom_name,
        message_id=str(hit.message_id) if hit.message_id else None,
        snippet=[SnippetPart(text=p.text, match=p.match) for p in found.snippet],
        created_at=hit.created_at,
    )


@router.get("/search", response_model=SearchOut, responses=error_responses(400, 401))
async def search_chats(
    user: CurrentUserId,
    db: Db,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=search.QUERY_MAX_CHARS,
            description='Words to find (all of them), "a phrase", -a word to leave out, or'
            " `or` between alternatives. Words are matched by their stem (English).",
            examples=["yoga breathing"],
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`nextCursor` of the previous page.")
    ] = None,
) -> SearchOut:
    """Search the caller's own prompts, replies and chatroom titles: best match first,
    each with a snippet whose matched words are marked. A page at a time."""
    query, found, next_cursor = await search.search(db, user, q, limit, cursor)
    return SearchOut(
        results=len(found),
        data=SearchData(query=query, hits=[hit_out(f) for f in found], next_cursor=next_cursor),
    )
