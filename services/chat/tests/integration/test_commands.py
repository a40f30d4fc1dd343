"""``python -m chat dlq | migrate --status``, through the command's main()."""

from __future__ import annotations

from chat.__main__ import run
from chat.settings import Settings
from shared.testing.cli import command_environment, run_cli


async def test_dlq_and_migrate_status_cover_what_chat_consumes_and_owns(
    monkeypatch, tmp_path, chat_settings: Settings
) -> None:
    command_environment(
        monkeypatch,
        tmp_path,
        app_env="test",
        database_url=chat_settings.database_url,
        redis_url=chat_settings.redis_url,
        jwt_secret=chat_settings.jwt_secret,
    )
    for stream in ("ai.events", "billing.events"):
        listed = await run_cli(run, "dlq", "list", "--stream", stream)
        assert listed.code == 0, listed.err
    assert (await run_cli(run, "dlq", "list", "--stream", "chat.events")).code == 2  # its own

    status = await run_cli(run, "migrate", "--status")
    assert status.code == 0, status.err
    assert status.out.splitlines()[-1].startswith("chat: ")
    assert " pending" not in status.out
