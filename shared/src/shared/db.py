"""Postgres access: one async pool per process; use cases run transactions on it.

Each service connects with ``search_path`` set to its own schema, so its SQL names its
tables unqualified and cannot reach another service's tables by accident.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Annotated, Self

import structlog
from fastapi import Depends, Request
from psycopg import AsyncConnection, AsyncTransaction
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

from shared import tracing

log = structlog.get_logger(__name__)

AfterCommit = Callable[[], Awaitable[None]]


def schema_conninfo(database_url: str, schema: str) -> str:
    """``database_url`` with ``search_path`` pinned to ``schema`` (and public for extensions)."""
    params = conninfo_to_dict(database_url)
    options = params.get("options") or ""
    params["options"] = f"{options} -c search_path={schema},public".strip()
    params.setdefault("application_name", schema)
    return make_conninfo("", **params)


async def open_pool(
    database_url: str, schema: str, *, min_size: int = 1, max_size: int = 10
) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(
        schema_conninfo(database_url, schema),
        min_size=min_size,
        max_size=max_size,
        open=False,
        timeout=10,
        name=schema,
        configure=tracing.instrument_connection if tracing.enabled() else None,
    )
    await pool.open(wait=True, timeout=30)
    return pool


class Database:
    """A service's database, as a use case sees it: it opens transactions on the pool.

    A use case takes one and runs as many transactions as it needs, each
    ``async with db.transaction() as tx:`` (or ``db.autocommit()``); nothing is held
    between them, so a use case can call Stripe or Redis between two without keeping a
    connection.
    """

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    def transaction(self) -> Transaction:
        return Transaction(self._pool)

    def autocommit(self) -> Transaction:
        """A connection without a transaction: each statement commits on its own, and no
        BEGIN or COMMIT costs a round trip. For a use case that reads first and then writes
        everything in one statement (atomic by itself), re-checking in that statement
        whatever the reads decided."""
        return Transaction(self._pool, autocommit=True)


class Transaction:
    """One transaction on one pooled connection, entered once.

    The block commits when it ends normally and rolls back when it raises. Callbacks
    registered with :meth:`after_commit` run only once the commit succeeded (cache
    invalidation and similar effects that must not happen for a transaction that rolled
    back).
    """

    def __init__(self, pool: AsyncConnectionPool, *, autocommit: bool = False) -> None:
        self._pool = pool
        self._autocommit = autocommit
        self._entered = False
        # _conn_cm and conn are set on entering; _tx_cm too, unless in autocommit mode.
        self._conn_cm: AbstractAsyncContextManager[AsyncConnection]
        self._tx_cm: AbstractAsyncContextManager[AsyncTransaction] | None = None
        self._after_commit: list[AfterCommit] = []
        self.conn: AsyncConnection

    def after_commit(self, callback: AfterCommit) -> None:
        self._after_commit.append(callback)

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("a Transaction is entered once: take another from the Database")
        self._entered = True
        self._conn_cm = self._pool.connection()
        self.conn = await self._conn_cm.__aenter__()
        try:
            if self._autocommit:
                await self.conn.set_autocommit(True)  # a flag: no round trip
                self._tx_cm = None
            else:
                self._tx_cm = self.conn.transaction()
                await self._tx_cm.__aenter__()
        except BaseException as exc:
            await self._leave(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def _leave(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            # The pool's connections run in transactions; a broken one (not idle) is
            # discarded by the pool instead.
            if self._autocommit and self.conn.info.transaction_status == TransactionStatus.IDLE:
                await self.conn.set_autocommit(False)
        finally:
            await self._conn_cm.__aexit__(exc_type, exc, tb)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._tx_cm is not None:
                await self._tx_cm.__aexit__(exc_type, exc, tb)
        finally:
            await self._leave(exc_type, exc, tb)
        if exc_type is None:
            for callback in self._after_commit:
                try:
                    await callback()
                except Exception:
                    log.exception(
                        "db.after_commit_failed", callback=getattr(callback, "__name__", "?")
                    )


# Dependencies are async functions: FastAPI runs a plain `def` one in a worker thread, a
# thread hop per request for nothing.
async def _request_db(request: Request) -> Database:
    return Database(request.app.state.pool)


# A route's database, on the pool the app's lifespan put in ``app.state.pool``.
Db = Annotated[Database, Depends(_request_db)]
