"""Drive an ASGI app in-process, lifespan included, through httpx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from shared.http import SERVER_KEEP_ALIVE_SECONDS


@asynccontextmanager
async def app_client(
    app: FastAPI, *, client_ip: str = "203.0.113.7"
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client wired to ``app`` with its lifespan running (pool, Redis, ...)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free 127.0.0.1 port; yields its base URL.

    For what an in-process transport cannot show: httpx's ASGITransport hands over a
    response only once it is complete, so streaming (SSE) needs a real socket.
    """
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_config=None,
        lifespan="on",
        timeout_keep_alive=SERVER_KEEP_ALIVE_SECONDS,  # as every service (shared.cli)
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
