"""``python -m ai_worker dlq``, through the command's main()."""

from __future__ import annotations

from ai_worker.__main__ import run
from ai_worker.handlers import AUTH_STREAM, CHAT_STREAM, GROUP
from shared.testing.cli import command_environment, run_cli


async def test_dlq_reads_the_dead_letters_of_group_ai_worker_on_chat_and_auth_events(
    monkeypatch, tmp_path, redis_url
) -> None:
    command_environment(
        monkeypatch, tmp_path, app_env="test", redis_url=redis_url, gemini_base_url="http://sim"
    )
    result = await run_cli(run, "dlq", "list")
    assert result.code == 0, result.err
    for line in result.out.splitlines():
        assert (
            f"  {CHAT_STREAM}  " in line
            or f"  {AUTH_STREAM}  " in line
            or line == f"no dead letters for group {GROUP} on {CHAT_STREAM}, {AUTH_STREAM}"
        )
    assert (await run_cli(run, "migrate", "--status")).code == 2  # no database, no migrations
