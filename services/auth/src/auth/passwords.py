"""Password hashing with argon2id (OWASP minimum: m=19 MiB, t=2, p=1), off the event loop.

Every hash and every check costs 19 MiB and tens of milliseconds of a core, and some routes
compute one before the caller has proven anything. :class:`Hashing` bounds how many run at
once in this process (``PASSWORD_HASH_CONCURRENCY``, sized to the pod's memory); a request
that cannot start one within ``PASSWORD_HASH_WAIT_SECONDS`` answers 503 instead of queueing
without end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.errors import ServiceUnavailable

log = structlog.get_logger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

MIN_LENGTH = 8
MAX_LENGTH = 128
MEMORY_KIB = 19_456

_hasher = PasswordHasher(time_cost=2, memory_cost=MEMORY_KIB, parallelism=1)
# Verified against when there is no hash to check, so a miss costs the same time as a hit.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


class Busy(ServiceUnavailable):
    code = "busy"
    message = "Too many sign-ins are being checked right now. Try again in a few seconds."

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "2"})


class Hashing:
    """argon2id with at most ``concurrency`` hashes at once; made inside the event loop."""

    def __init__(self, concurrency: int, wait_seconds: float) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._wait = wait_seconds

    async def _run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            async with asyncio.timeout(self._wait):
                await self._slots.acquire()
        except TimeoutError:
            log.warning("auth.password_hashing_busy")
            raise Busy() from None
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        finally:
            self._slots.release()

    async def hash(self, password: str) -> str:
        return await self._run(_hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches ``password_hash``; always False (after the same
        work) when there is no hash."""
        return await self._run(_verify, password_hash, password)
