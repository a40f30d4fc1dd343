"""chat served other ways, for `python -m bench.choices` (as deployed: `python -m chat serve`,
uvicorn, with gc.freeze after start-up):

    granian --interface asgi --factory --loop uvloop bench.variants:chat
    python -m uvicorn --factory bench.variants:chat_unfrozen
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def chat() -> FastAPI:
    from chat.app import create_app
    from chat.settings import Settings
    from shared.logging import configure_logging

    settings = Settings()
    configure_logging("chat", level=settings.log_level, json=True)
    return create_app(settings)


def chat_unfrozen() -> FastAPI:
    """chat without the gc.freeze that shared.http does after start-up."""
    import shared.http

    def as_is(lifespan: Any) -> Any:
        return lifespan

    original = shared.http.frozen_after_startup
    shared.http.frozen_after_startup = as_is  # type: ignore[assignment]
    try:
        return chat()
    finally:
        shared.http.frozen_after_startup = original
