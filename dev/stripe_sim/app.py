"""The simulator's HTTP app: the Stripe API subset (api.py), hosted pages (hosted.py) and
`/_sim/` controls (controls.py), over one SimState (state.py)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request, Response

from dev.stripe_sim import api as stripe_api
from dev.stripe_sim import controls, hosted
from dev.stripe_sim.state import DEFAULT_PORT, DEFAULT_SECRET, SimConfig, SimState

log = logging.getLogger("dev.stripe_sim")


def create_app(config: SimConfig | None = None) -> FastAPI:
    """The simulator as an ASGI app; its state is `app.state.sim` (a SimState)."""
    state = SimState(config or SimConfig())
    store = state.store

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        state.deliverer.reset()  # stop retries in flight

    app = FastAPI(title="Stripe API simulator", version="1", lifespan=lifespan)
    app.state.sim = state

    @app.middleware("http")
    async def expire_due_sessions(
        request: Request, call_next: Callable[[Request], Any]
    ) -> Response:
        """Sessions whose `expires_at` has come are expired (with their event) before any
        request sees them, as if Stripe had done it on time."""
        state.emit(store.expire_due_sessions())
        return await call_next(request)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(stripe_api.router(state))
    app.include_router(hosted.router(state))
    app.include_router(controls.router(state))
    return app


__all__ = ["DEFAULT_PORT", "DEFAULT_SECRET", "SimConfig", "SimState", "create_app"]
