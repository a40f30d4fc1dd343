"""Postgres access: one async pool per process, and a unit of work per use case.

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
from psycopg import AsyncConnection, AsyncPipeline, AsyncTransaction
from psycopg.conninfo import conninfo_to_dict, make_conninfo
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


class UnitOfWork:
    """One transaction on one pooled connection.

    ``async with UnitOfWork(pool) as uow:`` commits when the block ends normally and rolls
    back when it raises. Callbacks registered with :meth:`after_commit` run only once the
    commit succeeded (cache invalidation and similar effects that must not happen for a
    transaction that rolled back).
    """

    def __init__(self, pool: AsyncConnectionPool, *, pipeline: bool = False) -> None:
        self._pool = pool
        self._pipeline = pipeline
        # _conn_cm, _tx_cm and conn are set on entering; _pipeline_cm in pipeline mode only.
        self._conn_cm: AbstractAsyncContextManager[AsyncConnection]
        self._pipeline_cm: AbstractAsyncContextManager[AsyncPipeline] | None = None
        self._tx_cm: AbstractAsyncContextManager[AsyncTransaction]
        self._after_commit: list[AfterCommit] = []
        self.conn: AsyncConnection

    def pipelined(self) -> UnitOfWork:
        """The same kind of unit of work in psycopg's pipeline mode: a statement whose
        result is not fetched yet does not wait for Postgres, so the statements up to the
        next fetch (BEGIN and COMMIT included) travel in one round trip. For use cases that
        fetch at few, chosen places: errors and row counts arrive only at a fetch."""
        return UnitOfWork(self._pool, pipeline=True)

    def after_commit(self, callback: AfterCommit) -> None:
        self._after_commit.append(callback)

    async def __aenter__(self) -> Self:
        self._after_commit = []  # a unit of work may be entered again for a new transaction
        self._conn_cm = self._pool.connection()
        self.conn = await self._conn_cm.__aenter__()
        try:
            if self._pipeline:
                self._pipeline_cm = self.conn.pipeline()
                await self._pipeline_cm.__aenter__()
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
            if self._pipeline_cm is not None:
                pipeline, self._pipeline_cm = self._pipeline_cm, None
                await pipeline.__aexit__(exc_type, exc, tb)
        finally:
            await self._conn_cm.__aexit__(exc_type, exc, tb)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._tx_cm.__aexit__(exc_type, exc, tb)
        finally:
            await self._leave(exc_type, exc, tb)
        if exc_type is None:
            for callback in self._after_commit:
                try:
                    await callback()
                except Exception:
                    log.exception(
                        "uow.after_commit_failed", callback=getattr(callback, "__name__", "?")
                    )


# Dependencies are async functions: FastAPI runs a plain `def` one in a worker thread, a
# thread hop per request for nothing.
async def _request_uow(request: Request) -> UnitOfWork:
    return UnitOfWork(request.app.state.pool)


# A route's unit of work, on the pool the app's lifespan put in ``app.state.pool``.
Uow = Annotated[UnitOfWork, Depends(_request_uow)]
