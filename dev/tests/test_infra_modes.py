from __future__ import annotations

from pathlib import Path

import pytest

from dev.infra import InfraError, ensure_infra
from dev.proc import free_port


def test_urls_from_the_environment_are_used_as_is_even_when_embedded_is_forced(
    tmp_path: Path, server_database_url: str, redis_url: str
) -> None:
    env = {"DATABASE_URL": server_database_url, "REDIS_URL": redis_url}

    infra = ensure_infra(tmp_path, "always", env=env)

    assert (infra.database_url, infra.redis_url) == (server_database_url, redis_url)
    assert infra.embedded == set()
    assert infra.processes == {}
    assert not (tmp_path / "postgres").exists()


def test_a_database_url_that_does_not_answer_fails_clearly_and_starts_nothing(
    tmp_path: Path,
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"

    with pytest.raises(InfraError, match="Postgres did not answer at DATABASE_URL"):
        ensure_infra(tmp_path, "auto", env={"DATABASE_URL": url})

    assert not (tmp_path / "postgres").exists()


def test_a_redis_url_that_does_not_answer_fails_clearly(
    tmp_path: Path, server_database_url: str
) -> None:
    env = {"DATABASE_URL": server_database_url, "REDIS_URL": f"redis://127.0.0.1:{free_port()}"}

    with pytest.raises(InfraError, match="Redis did not answer PING at REDIS_URL"):
        ensure_infra(tmp_path, "never", env=env)


def test_an_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="use one of auto, always, never"):
        ensure_infra(tmp_path, "sometimes", env={})
