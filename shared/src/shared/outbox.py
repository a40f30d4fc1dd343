"""The transactional outbox (DESIGN §4).

A service never writes an event to Redis while handling a request. It calls :func:`add`
inside the transaction that changes its state; the row commits (or not) with that change.
:class:`OutboxRelay`, running in the same process, publishes committed rows to Redis
Streams and marks a row published only after ``XADD`` returned. A crash in between
publishes the row again, so delivery is at-least-once and consumers dedupe (the inbox).

The relay is woken by ``NOTIFY`` at commit and polls as a fallback; it claims rows with
``FOR UPDATE SKIP LOCKED`` so several replicas never publish the same batch at once.
Published rows stay in the table: they are the service's event log, and
:func:`republish_since` queues them again after Redis lost its data.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime

import psycopg
import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared import metrics, tracing
from shared.aio import sleep_unless
from shared.db import schema_conninfo
from shared.events.envelope import Event, encode, to_json
from shared.publish import STREAM_MAXLEN, stream_for

log = structlog.get_logger(__name__)


async def add(
    conn: AsyncConnection,
    event: Event,
    *,
    producer: str,
    correlation_id: str | None = None,
) -> str:
    """Insert ``event`` into the outbox in the caller's transaction; returns its event id."""
    values = row(event, producer=producer, correlation_id=correlation_id)
    # The table's trigger wakes the relay at commit (never for a rolled-back transaction).
    await conn.execute(f"INSERT INTO outbox ({COLUMNS}) VALUES (%s, %s, %s, %s)", values)
    return str(values[0])


# The outbox row of an event: what :func:`add` inserts, in this order. A use case that
# writes everything in one statement inserts ``row(...)`` into ``outbox (COLUMNS)`` itself.
COLUMNS = "event_id, stream, type, envelope"


def row(
    event: Event, *, producer: str, correlation_id: str | None = None
) -> tuple[uuid.UUID, str, str, str]:
    envelope = encode(event, producer=producer, correlation_id=correlation_id)
    return (envelope.id, stream_for(producer), envelope.type, to_json(envelope))


async def republish_since(conn: AsyncConnection, since: datetime) -> int:
    """Mark every event created at or after ``since`` unpublished, so the relay sends it
    again (after Redis lost data). Consumers dedupe by event id."""
    cur = await conn.execute(
        "UPDATE outbox SET published_at = NULL WHERE created_at >= %s AND published_at IS NOT NULL",
        (since,),
    )
    return cur.rowcount


class OutboxRelay:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        redis: Redis,
        *,
        database_url: str,
        schema: str,
        batch_size: int = 200,
        poll_interval: float = 1.0,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.listen_conninfo = schema_conninfo(database_url, schema)
        self.channel = f"outbox_{schema}"
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished rows; return how many were published.

        Two round trips to Postgres (pipeline mode): BEGIN and the SELECT; the UPDATE and
        COMMIT, after the XADDs returned."""
        async with self.pool.connection() as conn, conn.pipeline(), conn.transaction():
            cur = await conn.execute(
                """
                SELECT id, stream, type, envelope::text
                  FROM outbox
                 WHERE published_at IS NULL
                 ORDER BY id
                 LIMIT %s
                   FOR UPDATE SKIP LOCKED
                """,
                (self.batch_size,),
            )
            rows = await cur.fetchall()
            if not rows:
                return 0
            pipe = self.redis.pipeline(transaction=False)
            for _, stream, type_, envelope in rows:
                pipe.xadd(
                    stream,
                    {"type": type_, "envelope": envelope},
                    maxlen=STREAM_MAXLEN,
                    approximate=True,
                )
            # Raises on any failure: the transaction rolls back and nothing is marked.
            with tracing.publishing([row[1:] for row in rows]):
                await pipe.execute()
            await conn.execute(
                "UPDATE outbox SET published_at = now(), publish_count = publish_count + 1"
                " WHERE id = ANY(%s)",
                ([row[0] for row in rows],),
            )
        metrics.OUTBOX_PUBLISHED.inc(len(rows))
        log.info("outbox.published", count=len(rows))
        return len(rows)

    async def collect_metrics(self) -> None:
        """For a scrape: how many rows wait to be published, and how long the oldest has."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)"
                "  FROM outbox WHERE published_at IS NULL"
            )
            row = await cur.fetchone()
        assert row is not None  # an aggregate without GROUP BY returns one row
        count, age = row
        metrics.OUTBOX_BACKLOG.set(count)
        metrics.OUTBOX_LAG.set(float(age))

    async def drain(self) -> int:
        """Publish until nothing is left (tests, and the relay loop): until a batch comes
        back short, so an idle wake-up costs one transaction, not two."""
        total = 0
        while True:
            count = await self.publish_pending()
            total += count
            if count < self.batch_size:
                return total

    async def _listen(self, stop: asyncio.Event) -> None:
        """Turn NOTIFYs into wake-ups; reconnect if the connection drops."""
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.listen_conninfo, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {self.channel}")
                    self._wake.set()  # catch up on anything committed while not listening
                    async for _ in conn.notifies():
                        self._wake.set()
            except (psycopg.Error, OSError) as exc:
                log.warning("outbox.listen_failed", error=repr(exc))
                await sleep_unless(stop, 2.0)

    async def run(self, stop: asyncio.Event) -> None:
        remove_collector = metrics.on_scrape(self.collect_metrics)
        try:
            await self._run(stop)
        finally:
            remove_collector()

    async def _run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stop))
        # A stop wakes the loop as a NOTIFY does: one task for the loop's life, rather than
        # two tasks and an asyncio.wait for every wait (~20 µs a wake-up, and every commit
        # with an event can wake the relay: each prompt sent to chat, for one).
        stopping = asyncio.create_task(stop.wait())
        stopping.add_done_callback(lambda _: self._wake.set())
        backoff = self.poll_interval
        try:
            while not stop.is_set():
                self._wake.clear()  # before draining, so a NOTIFY during the drain is kept
                try:
                    await self.drain()
                    backoff = self.poll_interval
                except (RedisError, psycopg.Error, OSError) as exc:
                    log.warning("outbox.publish_failed", error=repr(exc))
                    backoff = min(backoff * 2, 10.0)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff):
                        await self._wake.wait()
        finally:
            listener.cancel()
            stopping.cancel()
            await asyncio.gather(listener, stopping, return_exceptions=True)
