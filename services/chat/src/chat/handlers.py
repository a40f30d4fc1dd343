"""Event handlers: thin doors into the use cases, each run in the consumer's transaction
(with the inbox row that makes a second delivery a no-op)."""

from __future__ import annotations

import structlog

from chat import deletion, prompts, rooms
from chat.context import ChatContext
from shared.delivery import InboxDelivery, InboxHandler
from shared.events import (
    ChatroomTitleSuggested,
    Event,
    ReplyCompleted,
    ReplyFailed,
    SubscriptionChanged,
    UserDeleted,
)
from shared.tiers import project_subscription_changed

log = structlog.get_logger(__name__)

Delivery = InboxDelivery[ChatContext]


def without_nul(text: str) -> str:
    """Postgres text cannot hold NUL; a model could still produce one."""
    return text.replace("\x00", "")


async def on_reply_completed(event: ReplyCompleted, delivery: Delivery) -> None:
    await prompts.complete_reply(
        delivery.tx,
        event.reply_id,
        text=without_nul(event.text),
        finish_reason=event.finish_reason,
        prompt_tokens=event.usage.prompt_tokens,
        output_tokens=event.usage.output_tokens,
        announce_to=delivery.ctx.redis,
    )


async def on_reply_failed(event: ReplyFailed, delivery: Delivery) -> None:
    await prompts.fail_reply(
        delivery.tx,
        event.reply_id,
        status=event.status,
        code=event.reason,
        message=without_nul(event.message),
        partial_text=without_nul(event.partial_text),
        announce_to=delivery.ctx.redis,
    )


async def on_chatroom_title_suggested(event: ChatroomTitleSuggested, delivery: Delivery) -> None:
    renamed = await rooms.apply_title(
        delivery.tx, delivery.ctx, event.chatroom_id, event.user_id, event.title
    )
    log.info("chat.title_suggested", chatroom_id=str(event.chatroom_id), renamed=renamed)


async def on_subscription_changed(event: SubscriptionChanged, delivery: Delivery) -> None:
    applied = await project_subscription_changed(delivery.tx.conn, event)
    log.info("chat.subscription_projected", user_id=str(event.user_id), applied=applied)


async def on_user_deleted(event: UserDeleted, delivery: Delivery) -> None:
    await deletion.erase_user(delivery.tx, delivery.ctx, event.user_id)


HANDLERS: dict[type[Event], InboxHandler[ChatContext]] = {
    ReplyCompleted: on_reply_completed,
    ReplyFailed: on_reply_failed,
    ChatroomTitleSuggested: on_chatroom_title_suggested,
    SubscriptionChanged: on_subscription_changed,
    UserDeleted: on_user_deleted,
}
