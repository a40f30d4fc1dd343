"""All of auth's SQL. Functions take the connection first; none of them commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row

from shared.tiers import erase_user


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    mobile_number: str
    # The password that logs in; only ever set after the number was proven.
    password_hash: str | None
    # A password chosen at signup and not yet confirmed with a code: it never logs in.
    pending_password_hash: str | None
    mobile_verified_at: datetime | None
    tokens_valid_after: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Challenge:
    id: uuid.UUID
    user_id: uuid.UUID
    purpose: str
    code_hash: str
    attempts: int
    expires_at: datetime
    consumed_at: datetime | None


_USER_COLUMNS = (
    "id, mobile_number, password_hash, pending_password_hash, mobile_verified_at,"
    " tokens_valid_after, created_at, updated_at"
)


async def insert_user(
    conn: AsyncConnection,
    user_id: uuid.UUID,
    mobile_number: str,
    pending_password_hash: str | None,
) -> User | None:
    """The new user (its number not proven yet), or None when the mobile number is taken."""
    async with conn.cursor(row_factory=class_row(User)) as cur:
        await cur.execute(
            f"""
            INSERT INTO users (id, mobile_number, pending_password_hash)
            VALUES (%s, %s, %s)
            ON CONFLICT ON CONSTRAINT users_mobile_number_key DO NOTHING
            RETURNING {_USER_COLUMNS}
            """,
            (user_id, mobile_number, pending_password_hash),
        )
        return await cur.fetchone()


async def get_user_by_mobile(conn: AsyncConnection, mobile_number: str) -> User | None:
    async with conn.cursor(row_factory=class_row(User)) as cur:
        await cur.execute(
            f"SELECT {_USER_COLUMNS} FROM users WHERE mobile_number = %s", (mobile_number,)
        )
        return await cur.fetchone()


async def get_user(conn: AsyncConnection, user_id: uuid.UUID) -> User | None:
    async with conn.cursor(row_factory=class_row(User)) as cur:
        await cur.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = %s", (user_id,))
        return await cur.fetchone()


async def lock_user(conn: AsyncConnection, user_id: uuid.UUID) -> User | None:
    async with conn.cursor(row_factory=class_row(User)) as cur:
        await cur.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE id = %s FOR UPDATE", (user_id,))
        return await cur.fetchone()


async def lock_user_by_mobile(conn: AsyncConnection, mobile_number: str) -> User | None:
    async with conn.cursor(row_factory=class_row(User)) as cur:
        await cur.execute(
            f"SELECT {_USER_COLUMNS} FROM users WHERE mobile_number = %s FOR UPDATE",
            (mobile_number,),
        )
        return await cur.fetchone()


async def record_proof(
    conn: AsyncConnection, user_id: uuid.UUID, confirmed_password_hash: str | None
) -> None:
    """A code sent to the user's number was used: the number is proven, the pending
    password is dropped, or becomes the password when ``confirmed_password_hash`` is it."""
    await conn.execute(
        """
        UPDATE users
           SET mobile_verified_at = coalesce(mobile_verified_at, now()),
               password_hash = coalesce(%s, password_hash),
               pending_password_hash = NULL,
               updated_at = now()
         WHERE id = %s
        """,
        (confirmed_password_hash, user_id),
    )


async def set_password(
    conn: AsyncConnection, user_id: uuid.UUID, password_hash: str, tokens_valid_after: datetime
) -> None:
    """Only after a proof (a code, or the current password, which itself needed one)."""
    await conn.execute(
        """
        UPDATE users
           SET password_hash = %s, pending_password_hash = NULL,
               mobile_verified_at = coalesce(mobile_verified_at, now()),
               tokens_valid_after = %s, updated_at = now()
         WHERE id = %s
        """,
        (password_hash, tokens_valid_after, user_id),
    )


async def set_tokens_valid_after(
    conn: AsyncConnection, user_id: uuid.UUID, tokens_valid_after: datetime
) -> None:
    await conn.execute(
        "UPDATE users SET tokens_valid_after = %s, updated_at = now() WHERE id = %s",
        (tokens_valid_after, user_id),
    )


async def replace_challenge(
    conn: AsyncConnection,
    user_id: uuid.UUID,
    purpose: str,
    challenge_id: uuid.UUID,
    code_hash: str,
    expires_at: datetime,
) -> None:
    """Store a new code for (user, purpose); the previous one, if any, stops working."""
    await conn.execute(
        """
        INSERT INTO otp_challenges (user_id, purpose, id, code_hash, attempts, expires_at)
        VALUES (%s, %s, %s, %s, 0, %s)
        ON CONFLICT ON CONSTRAINT otp_challenges_pkey DO UPDATE
           SET id = EXCLUDED.id, code_hash = EXCLUDED.code_hash, attempts = 0,
               expires_at = EXCLUDED.expires_at, consumed_at = NULL, created_at = now()
        """,
        (user_id, purpose, challenge_id, code_hash, expires_at),
    )


async def lock_challenge(
    conn: AsyncConnection, user_id: uuid.UUID, purpose: str
) -> Challenge | None:
    """The user's challenge for ``purpose``, locked until the transaction ends, so two
    concurrent verifications of one code are serialised and only one can consume it."""
    async with conn.cursor(row_factory=class_row(Challenge)) as cur:
        await cur.execute(
            """
            SELECT id, user_id, purpose, code_hash, attempts, expires_at, consumed_at
              FROM otp_challenges
             WHERE user_id = %s AND purpose = %s
               FOR UPDATE
            """,
            (user_id, purpose),
        )
        return await cur.fetchone()


async def record_failed_attempt(conn: AsyncConnection, challenge_id: uuid.UUID) -> int:
    cur = await conn.execute(
        "UPDATE otp_challenges SET attempts = attempts + 1 WHERE id = %s RETURNING attempts",
        (challenge_id,),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def consume_challenge(conn: AsyncConnection, challenge_id: uuid.UUID) -> bool:
    cur = await conn.execute(
        "UPDATE otp_challenges SET consumed_at = now() WHERE id = %s AND consumed_at IS NULL",
        (challenge_id,),
    )
    return cur.rowcount == 1


async def delete_user(conn: AsyncConnection, user_id: uuid.UUID) -> bool:
    """The user and all auth holds of them: their codes (ON DELETE CASCADE) and their tier
    projection row (for good: shared.tiers.erase_user). False when there was no such user."""
    await erase_user(conn, user_id)
    cur = await conn.execute("DELETE FROM users WHERE id = %s", (user_id,))
    return cur.rowcount > 0
