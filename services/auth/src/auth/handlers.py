"""Event handlers, run in the consumer's transaction with the inbox row."""

from __future__ import annotations

import structlog

from auth import deletion
from auth.context import AuthContext
from shared.delivery import InboxDelivery, InboxHandler
from shared.events import Event, SubscriptionChanged, UserDeleted
from shared.tiers import project_subscription_changed

log = structlog.get_logger(__name__)


async def on_subscription_changed(
    event: SubscriptionChanged, delivery: InboxDelivery[AuthContext]
) -> None:
    applied = await project_subscription_changed(delivery.tx.conn, event)
    log.info("auth.subscription_projected", user_id=str(event.user_id), applied=applied)


async def on_user_deleted(event: UserDeleted, delivery: InboxDelivery[AuthContext]) -> None:
    await deletion.erase_published(delivery.ctx, event.user_id)


HANDLERS: dict[type[Event], InboxHandler[AuthContext]] = {
    SubscriptionChanged: on_subscription_changed,
    UserDeleted: on_user_deleted,
}
