"""Search across chats with 100,000 messages: how long `GET /search`'s query takes.

    python -m bench.search                 # ~2 minutes: seed, then measure
    python -m bench.search --runs 20       # fewer runs a query

A fresh database, migrated as chat's, gets one user with 100,000 messages (prompts and
replies, half each) in 500 chatrooms, and as many again spread over 99 other users (so
the index also holds rows the filter must leave out). The words come from a fixed
vocabulary with a Zipf distribution, plus a few planted ones of known frequency, so each
query below matches a known share of the user's messages. Each query runs through chat's
use case (chat.search.search: the SQL, the ranking, ts_headline on the page, the snippet
parsing) on one pooled connection, one at a time, after warming up. Figures are printed;
nothing asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.stackrun import bench_infra, fresh_database, percentiles
from chat import search
from shared.db import Database, open_pool
from shared.migrations import MESSAGING, TIER_PROJECTION, migrate

MESSAGES = 100_000
ROOMS = 500
OTHER_USERS = 99
MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "chat" / "migrations"
# (word, share of messages it is planted in)
PLANTED = [("yoga", 0.001), ("a kayak trip along the fjords", 0.001), ("python", 0.02)]
# (what the row says, query, pages deep)
QUERIES = [
    ("rare word (~100 hits)", "yoga", 1),
    ("two words, both needed", "kayak fjords", 1),
    ("medium word (~2,000 hits)", "python", 1),
    ("common word (~30% of messages)", "@20", 1),  # @n: the vocabulary's (n+1)th word
    ("the same, 5th page (cursor)", "@20", 5),
    ("the most frequent word (~90%)", "@0", 1),
    ("phrase", '"kayak trip"', 1),
    ("no match", "platypus", 1),
]


@dataclass(frozen=True)
class Row:
    label: str
    query: str
    page: int
    hits: int  # on the page measured
    p50_ms: float
    p99_ms: float


def vocabulary(rng: random.Random, size: int = 4000) -> list[str]:
    syllables = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choices(syllables, k=rng.choice((2, 3, 3, 4)))))
    return sorted(words)


def texts(rng: random.Random, words: list[str], count: int) -> list[str]:
    weights = [1 / (rank + 1) for rank in range(len(words))]
    out = []
    for i in range(count):
        length = rng.randint(8, 30) if i % 2 == 0 else rng.randint(40, 160)  # prompt, reply
        chosen = rng.choices(words, weights, k=length)
        for word, share in PLANTED:
            if rng.random() < share:
                chosen.insert(rng.randrange(len(chosen) + 1), word)
        out.append(" ".join(chosen))
    return out


def seed(database_url: str, user_id: uuid.UUID) -> list[str]:
    """The rooms and messages, by COPY; returns the vocabulary, most frequent first."""
    rng = random.Random(14)
    words = vocabulary(rng)
    others = [uuid.uuid4() for _ in range(OTHER_USERS)]
    # The user's rooms, then as many of the others'.
    rooms = [(uuid.uuid4(), user_id) for _ in range(ROOMS)]
    rooms += [(uuid.uuid4(), others[i % OTHER_USERS]) for i in range(ROOMS)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with psycopg.connect(database_url) as conn:
        with conn.cursor().copy(
            "COPY chat.chatrooms (id, user_id, name, created_at) FROM STDIN"
        ) as copy:
            for i, (room_id, owner) in enumerate(rooms):
                name = " ".join(rng.choices(words[:300], k=3))
                copy.write_row((room_id, owner, name, start + timedelta(minutes=i)))
        with conn.cursor().copy(
            "COPY chat.messages (id, chatroom_id, user_id, role, content, status, created_at)"
            " FROM STDIN"
        ) as copy:
            for i, content in enumerate(texts(rng, words, MESSAGES * 2)):
                # A prompt and its reply in one room; the user's first, then the others'.
                room_id, owner = rooms[(i // 2) % ROOMS + (ROOMS if i >= MESSAGES else 0)]
                role = "USER" if i % 2 == 0 else "GEMINI"
                at = start + timedelta(seconds=(i % MESSAGES) * 300)
                copy.write_row((uuid.uuid4(), room_id, owner, role, content, "completed", at))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE chat.messages")
        conn.execute("VACUUM ANALYZE chat.chatrooms")
    return words


async def measure(database_url: str, user_id: uuid.UUID, words: list[str], runs: int) -> list[Row]:
    pool = await open_pool(database_url, "chat", min_size=1, max_size=1)
    db = Database(pool)
    rows = []
    try:
        for label, query, page in QUERIES:
            if query.startswith("@"):
                query = words[int(query[1:])]
            cursor = None
            for _ in range(page - 1):
                cursor = (await search.search(db, user_id, query, 20, cursor))[2]
            timings = []
            for i in range(runs + 3):
                began = time.perf_counter()
                _, found, _ = await search.search(db, user_id, query, 20, cursor)
                if i >= 3:  # the first runs warm the caches
                    timings.append((time.perf_counter() - began) * 1000)
            p = percentiles(timings)
            rows.append(Row(label, query, page, len(found), p["p50"], p["p99"]))
    finally:
        await pool.close()
    return rows


def count(database_url: str, user_id: uuid.UUID, query: str) -> int:
    with psycopg.connect(database_url) as conn:
        found = conn.execute(
            "SELECT (SELECT count(*) FROM chat.messages WHERE user_id = %(u)s"
            "          AND search @@ websearch_to_tsquery('english', %(q)s))"
            "     + (SELECT count(*) FROM chat.chatrooms WHERE user_id = %(u)s"
            "          AND search @@ websearch_to_tsquery('english', %(q)s))",
            {"u": user_id, "q": query},
        ).fetchone()
    return int(found[0]) if found else 0


def run(server_url: str, runs: int) -> tuple[list[Row], dict[str, int], float]:
    """The rows, each query's total hits, and how long seeding took (s)."""
    user_id = uuid.uuid4()
    with fresh_database(server_url) as url:
        migrate(url, "chat", [MESSAGING, TIER_PROJECTION, MIGRATIONS])
        began = time.perf_counter()
        words = seed(url, user_id)
        seeded = time.perf_counter() - began
        rows = asyncio.run(measure(url, user_id, words, runs))
        totals = {row.query: count(url, user_id, row.query) for row in rows}
    return rows, totals, seeded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="measured runs a query")
    args = parser.parse_args()
    infra = bench_infra()
    try:
        rows, totals, seeded = run(infra.database_url, args.runs)
    finally:
        infra.stop()
    print(
        f"GET /search with {MESSAGES:,} messages of one user in {ROOMS} chatrooms"
        f" (+{MESSAGES:,} of {OTHER_USERS} others); seeded in {seeded:.0f} s;"
        f" page of 20, {args.runs} runs a query, one at a time"
    )
    print("| query | q | matches | page | p50 | p99 |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r.label} | `{r.query}` | {totals[r.query]:,} | {r.page} "
            f"| {r.p50_ms:.1f} ms | {r.p99_ms:.1f} ms |"
        )


if __name__ == "__main__":
    main()
