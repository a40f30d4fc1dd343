"""Event handlers, run in the consumer's transaction with the inbox row."""

from __future__ import annotations

import structlog

from shared.consumer import DbHandler
from shared.db import UnitOfWork
from shared.events import Event, SubscriptionChanged
from shared.tiers import project_subscription_changed

log = structlog.get_logger(__name__)


async def on_subscription_changed(event: SubscriptionChanged, uow: UnitOfWork) -> None:
    applied = await project_subscription_changed(uow.conn, event)
    log.info("auth.subscription_projected", user_id=str(event.user_id), applied=applied)


HANDLERS: dict[type[Event], DbHandler] = {SubscriptionChanged: on_subscription_changed}
