"""Search across chats: the caller's prompts, replies and chatroom titles that match a
query, best first, a page at a time, each with a snippet that says what matched."""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from chat.repository import search as sql
from chat.repository.search import After, Hit
from shared.db import Database
from shared.errors import ValidationFailed

QUERY_MAX_CHARS = 200
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Part:
    """A piece of a snippet: ``match`` when it is a word the query matched."""

    text: str
    match: bool


@dataclass(frozen=True)
class Found:
    hit: Hit
    snippet: list[Part]


def snippet_parts(headline: str) -> list[Part]:
    """ts_headline's text, with its private markers, as plain pieces on one line: the
    client shows each as text and marks the matched ones, so no markup ever comes from
    the database."""
    parts: list[Part] = []
    for i, chunk in enumerate(headline.split(sql.START)):
        matched, _, rest = chunk.partition(sql.STOP) if i else ("", "", chunk)
        for text, match in ((matched, True), (rest, False)):
            text = _SPACES.sub(" ", text)
            if parts and parts[-1].match == match:
                parts[-1] = Part(parts[-1].text + text, match)
            elif text:
                parts.append(Part(text.lstrip() if not parts else text, match))
    if parts:
        parts[-1] = Part(parts[-1].text.rstrip(), parts[-1].match)
    return [p for p in parts if p.text]


def clean_query(raw: str) -> str:
    query = " ".join(raw.split())
    if not query:
        raise ValidationFailed.on("q", "Type something to search for.")
    if len(query) > QUERY_MAX_CHARS:
        raise ValidationFailed.on("q", f"At most {QUERY_MAX_CHARS} characters.")
    if "\x00" in query:
        raise ValidationFailed.on("q", "must not contain NUL characters")
    return query


def encode_cursor(hit: Hit) -> str:
    raw = json.dumps([hit.rank, hit.created_at.isoformat(), str(hit.hit_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> After:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        rank, created_at, hit_id = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(rank, float | int) or isinstance(rank, bool):
            raise TypeError("rank")
        return After(float(rank), datetime.fromisoformat(created_at), uuid.UUID(hit_id))
    except (ValueError, TypeError) as exc:
        raise ValidationFailed.on("cursor", "Not a cursor returned by this API.") from exc


async def search(
    db: Database, user_id: uuid.UUID, raw_query: str, limit: int, cursor: str | None
) -> tuple[str, list[Found], str | None]:
    """The query as searched (whitespace folded), a page of hits, and the next page's
    cursor (None on the last). 400 for an empty or overlong query or a bad cursor."""
    query = clean_query(raw_query)
    after = decode_cursor(cursor) if cursor else None
    async with db.transaction() as tx:
        hits = await sql.search(tx.conn, user_id, query, limit + 1, after)
    next_cursor = encode_cursor(hits[limit - 1]) if len(hits) > limit else None
    return query, [Found(h, snippet_parts(h.snippet)) for h in hits[:limit]], next_cursor
