"""Branches: editing a prompt (a new version of it, beside the old one, and a new reply:
the chat continues from there) and showing another branch (the path through another
version of a message)."""

from __future__ import annotations

import uuid

import structlog

from chat import prompts, repository
from chat.context import ChatContext
from chat.rooms import room_not_found
from shared.db import Database
from shared.errors import NotFound

log = structlog.get_logger(__name__)


def message_not_found() -> NotFound:
    return NotFound("Message not found or you do not have access to it.", code="message_not_found")


async def edit_prompt(
    db: Database,
    ctx: ChatContext,
    user_id: uuid.UUID,
    room_id: uuid.UUID,
    prompt_id: uuid.UUID,
    raw_content: str,
    correlation_id: str | None,
) -> prompts.QueuedPrompt:
    """A new version of prompt ``prompt_id`` and a reply to it, as a send is (quota, one
    pending reply per room); the prompt it replaces and all that followed it are kept as
    a sibling branch."""
    async with db.transaction() as tx:
        prompt = await repository.get_message(tx.conn, prompt_id, room_id, user_id)
    if prompt is None or prompt.role != "USER":
        raise message_not_found()
    queued = await prompts.queue_message(
        db, ctx, user_id, room_id, raw_content, correlation_id, edit_of=prompt
    )
    log.info("chat.prompt_edited", prompt_id=str(queued.prompt.id), edited=str(prompt_id))
    return queued


async def show_branch(
    db: Database, user_id: uuid.UUID, room_id: uuid.UUID, message_id: uuid.UUID
) -> None:
    """Make the room's current path go through ``message_id``: to the newest message of
    its branch, where the user last was on it."""
    async with db.transaction() as tx:
        room = await repository.get_chatroom(tx.conn, room_id, user_id, lock=True)
        if room is None:
            raise room_not_found()
        leaf = await repository.newest_under(tx.conn, room_id, message_id)
        if leaf is None:
            raise message_not_found()
        await repository.set_leaf(tx.conn, room_id, leaf)
