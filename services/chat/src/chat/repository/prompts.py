"""A prompt's SQL: what sending one needs to know, storing it in one statement, and the
daily quota."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from psycopg import AsyncConnection

from chat.repository.branches import path_cte
from chat.repository.rows import MESSAGE_COLUMNS, ROOM_COLUMNS, Chatroom, Message, pending_sql
from shared import outbox
from shared.tiers import SubscriptionState


@dataclass(frozen=True)
class PromptContext:
    """What sending a prompt into a room needs to know first, read in one statement."""

    room: Chatroom
    prompts: int  # prompts already in the room
    pending: bool  # a reply in the room is queued or being generated
    used_today: int  # quota units the user took on the given day
    # (role, content) of the latest completed messages, newest first.
    history: list[tuple[str, str]]
    subscription: SubscriptionState | None
    parent: uuid.UUID | None  # where the new prompt hangs (_ANCHOR); None: a first prompt


# Where a new prompt hangs: after the room's leaf, or (an edit) beside the prompt it
# replaces, after that prompt's parent.
_ANCHOR = """CASE WHEN %(editing)s THEN %(anchor)s::uuid
                  ELSE (SELECT leaf_id FROM chatrooms WHERE id = %(room)s) END"""


async def prompt_context(
    conn: AsyncConnection,
    room_id: uuid.UUID,
    user_id: uuid.UUID,
    day: date,
    history_turns: int,
    *,
    editing: bool = False,
    anchor: uuid.UUID | None = None,
) -> PromptContext | None:
    """None when the room does not exist or is not ``user_id``'s. The history is the path
    ending at the room's leaf, or with ``editing``, at ``anchor`` (the edited prompt's
    parent)."""
    cur = await conn.execute(
        path_cte(_ANCHOR, max_depth="%(depth)s")
        + f"""
        SELECT {", ".join("c." + c for c in ROOM_COLUMNS.split(", "))},
               (SELECT count(*) FROM messages m
                 WHERE m.chatroom_id = c.id AND m.role = 'USER') AS prompts,
               EXISTS (SELECT 1 FROM messages m
                        WHERE m.chatroom_id = c.id AND m.role = 'GEMINI'
                          AND {pending_sql("m")}) AS pending,
               (SELECT u.used FROM daily_usage u
                 WHERE u.user_id = c.user_id AND u.day = %(day)s) AS used_today,
               (SELECT json_agg(json_build_array(h.role, h.content) ORDER BY h.depth)
                  FROM (SELECT role, content, depth FROM path
                         WHERE status = 'completed' AND content <> ''
                         ORDER BY depth LIMIT %(turns)s) h) AS history,
               (SELECT id FROM path WHERE depth = 0) AS parent,
               s.status, s.current_period_end, s.cancel_at_period_end, s.grace_until, s.as_of
          FROM chatrooms c LEFT JOIN tier_projection s ON s.user_id = c.user_id
         WHERE c.id = %(room)s AND c.user_id = %(user)s
        """,
        {
            "room": room_id,
            "user": user_id,
            "day": day,
            "turns": history_turns,
            "depth": 4 * history_turns + 4,
            "editing": editing,
            "anchor": anchor,
        },
    )
    row = await cur.fetchone()
    if row is None:
        return None
    width = len(ROOM_COLUMNS.split(", "))
    room = Chatroom(*row[:width])
    prompts, pending, used_today, history, parent = row[width : width + 5]
    projected = row[width + 5 :]
    subscription = SubscriptionState(*projected) if projected[0] is not None else None
    return PromptContext(
        room,
        int(prompts),
        bool(pending),
        int(used_today or 0),
        [(role, content) for role, content in history or []],
        subscription,
        parent,
    )


@dataclass(frozen=True)
class StoredPrompt:
    used: int | None  # today's quota units after this one; None: the limit was reached
    prompt: Message | None
    reply: Message | None


async def store_prompt(
    conn: AsyncConnection,
    *,
    user_id: uuid.UUID,
    room_id: uuid.UUID,
    day: date,
    limit: int | None,
    prompt_id: uuid.UUID,
    reply_id: uuid.UUID,
    content: str,
    model: str,
    parent_id: uuid.UUID | None,
    event: tuple[object, ...],
) -> StoredPrompt:
    """Take a quota unit and insert the prompt, its queued reply and the outbox row
    ``event`` (:func:`shared.outbox.row`): one statement, so one round trip and atomic
    without a transaction around it. When the limit is reached nothing is inserted
    (``used`` None). Raises UniqueViolation when a reply in the room is pending, and
    ForeignKeyViolation when the room was deleted meanwhile."""
    event_id, stream, event_type, envelope = event
    cur = await conn.execute(
        _STORE_PROMPT,
        {
            "user_id": user_id,
            "room_id": room_id,
            "day": day,
            "limit": limit,
            "prompt_id": prompt_id,
            "reply_id": reply_id,
            "content": content,
            "model": model,
            "parent_id": parent_id,
            "event_id": event_id,
            "stream": stream,
            "type": event_type,
            "envelope": envelope,
        },
    )
    rows = await cur.fetchall()
    if not rows:
        return StoredPrompt(None, None, None)
    width = len(MESSAGE_COLUMNS.split(","))
    prompt, reply = (Message(*r[1 : 1 + width]) for r in rows)
    return StoredPrompt(int(rows[0][0]), prompt, reply)


# Every part selects FROM quota: when the limit is reached (no row) nothing is inserted
# and the room stays where it was; else its leaf moves to the new reply.
# The prompt is inserted before its reply (ORDER BY), so it gets the lower seq.
_STORE_PROMPT = f"""
    WITH quota AS (
        INSERT INTO daily_usage AS u (user_id, day, used)
        SELECT %(user_id)s, %(day)s, 1 WHERE %(limit)s::integer IS NULL OR %(limit)s > 0
        ON CONFLICT ON CONSTRAINT daily_usage_pkey
        DO UPDATE SET used = u.used + 1 WHERE %(limit)s::integer IS NULL OR u.used < %(limit)s
        RETURNING used
    ), stored AS (
        INSERT INTO messages
            (id, chatroom_id, user_id, role, content, status, reply_to, quota_day, model,
             parent_id, completed_at)
        SELECT m.id, %(room_id)s, %(user_id)s, m.role, m.content, m.status, m.reply_to,
               m.quota_day, m.model, m.parent_id,
               CASE WHEN m.status = 'completed' THEN clock_timestamp() END
          FROM quota,
               (VALUES (1, %(prompt_id)s::uuid, 'USER', %(content)s, 'completed',
                        NULL::uuid, NULL::date, NULL::text, %(parent_id)s::uuid),
                       (2, %(reply_id)s::uuid, 'GEMINI', '', 'queued',
                        %(prompt_id)s::uuid, %(day)s::date, %(model)s::text,
                        %(prompt_id)s::uuid))
                 AS m (n, id, role, content, status, reply_to, quota_day, model, parent_id)
         ORDER BY m.n
        RETURNING {MESSAGE_COLUMNS}
    ), moved AS (
        UPDATE chatrooms SET leaf_id = %(reply_id)s FROM quota WHERE id = %(room_id)s
    ), queued AS (
        INSERT INTO outbox ({outbox.COLUMNS})
        SELECT %(event_id)s, %(stream)s, %(type)s, %(envelope)s::jsonb FROM quota
    )
    SELECT quota.used, stored.* FROM quota, stored ORDER BY stored.seq
"""


async def take_quota_unit(
    conn: AsyncConnection, user_id: uuid.UUID, day: date, limit: int | None
) -> int | None:
    """Count one prompt for ``day``; the new count, or None when ``limit`` is reached.

    Atomic: the conflict path locks the (user, day) row, so concurrent requests queue up
    behind each other and no interleaving can go past the limit. A limit of 0 refuses the
    day's first prompt too (no row is inserted).
    """
    cur = await conn.execute(_TAKE_QUOTA_UNIT, {"user_id": user_id, "day": day, "limit": limit})
    row = await cur.fetchone()
    return int(row[0]) if row else None


_TAKE_QUOTA_UNIT = """
    INSERT INTO daily_usage AS u (user_id, day, used)
    SELECT %(user_id)s, %(day)s, 1 WHERE %(limit)s::integer IS NULL OR %(limit)s > 0
    ON CONFLICT ON CONSTRAINT daily_usage_pkey
    DO UPDATE SET used = u.used + 1 WHERE %(limit)s::integer IS NULL OR u.used < %(limit)s
    RETURNING used
"""


async def give_back_quota_unit(conn: AsyncConnection, user_id: uuid.UUID, day: date) -> None:
    await conn.execute(
        "UPDATE daily_usage SET used = used - 1 WHERE user_id = %s AND day = %s AND used > 0",
        (user_id, day),
    )


async def quota_used(conn: AsyncConnection, user_id: uuid.UUID, day: date) -> int:
    cur = await conn.execute(
        "SELECT used FROM daily_usage WHERE user_id = %s AND day = %s", (user_id, day)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0
