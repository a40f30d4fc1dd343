"""Drive an ASGI app in-process, lifespan included, through httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI


@asynccontextmanager
async def app_client(
    app: FastAPI, *, client_ip: str = "203.0.113.7"
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client wired to ``app`` with its lifespan running (pool, Redis, ...)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
