"""The reliability suite's own world: embedded PostgreSQL and Valkey started for this module
only (so they can be killed and restarted without touching anyone else's servers), the whole
stack on free ports against them, and helpers to restart each server on the same port.

Everything here is synchronous on purpose: child processes are started from the main thread
(dev/proc.py asks Linux to kill a child when the *thread* that started it exits), while the
prompt traffic runs in worker threads of its own (see ``traffic.py``).
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from dev import infra as dev_infra
from dev.proc import free_port, stop_all
from dev.stack import START_TIMEOUT, Stack, driven_stack_env

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LOG_DIR = ARTIFACTS / "reliability-logs"
JWT_SECRET = "rel-H4kT9wPz2QmX7vLc5NbR8sYd3JfGa6Ue1KoWi0TpVxZq"
WEBHOOK_SECRET = "whsec_rel_Np4Ks8Qw2Zx6Lm9Vt3Rb7Yc1Hd5Jf0Ga"
BASIC_LIMIT = 1000  # high: the invariants are about counting, not about the limit


@dataclass
class World:
    """The running stack and the embedded servers under it."""

    stack: Stack
    infra: dev_infra.Infra
    data_dir: Path

    @property
    def database_url(self) -> str:
        return self.infra.database_url

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            return conn.execute(query, params).fetchall()

    # -- faults on the servers ---------------------------------------------------------

    def restart_redis(self, down_seconds: float = 0.0) -> None:
        """SIGKILL valkey and start a new, empty one (no persistence) on the same port."""
        port = int(self.infra.redis_url.rsplit(":", 1)[1])
        old = self.infra.processes["redis"]
        old.send_signal(signal.SIGKILL)
        old.wait(10)
        time.sleep(down_seconds)
        # dev.infra launches it with --save "" --appendonly no: nothing survives the kill.
        url = dev_infra._redis(
            self.infra, self.data_dir, "always", {"EMBEDDED_REDIS_PORT": str(port)}
        )
        assert url == self.infra.redis_url, f"valkey came back on {url}, not on port {port}"

    def restart_postgres(self, down_seconds: float = 0.0) -> None:
        """Fast shutdown (SIGINT), then the same data dir on the same port again."""
        port = int(self.database_url.rsplit(":", 1)[1].split("/", 1)[0])
        stop_all([(self.infra.processes["postgres"], signal.SIGINT)], dev_infra.STOP_TIMEOUT)
        time.sleep(down_seconds)
        proc, new_port = dev_infra._start_postgres(self.data_dir, port)
        self.infra.processes["postgres"] = proc
        assert new_port == port, f"postgres came back on {new_port}, not on {port}"
        dev_infra._wait_for_postgres(self.database_url, proc, self.data_dir / "postgres.log")

    def kill_service(self, name: str) -> None:
        proc = self.stack.processes[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("reliability") / "infra"
    data_dir.mkdir()
    # Free ports rather than dev.infra's preferred 54329/63799, which `make run` may take.
    infra = dev_infra.ensure_infra(
        data_dir,
        "always",
        env={"EMBEDDED_POSTGRES_PORT": str(free_port()), "EMBEDDED_REDIS_PORT": str(free_port())},
    )
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for old in LOG_DIR.glob("*.log"):
        old.unlink()
    env = driven_stack_env(
        database_url=infra.database_url,
        redis_url=infra.redis_url,
        jwt_secret=JWT_SECRET,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        GEMINI_SIM_TOKEN_DELAY_MS="15",
        BASIC_TIER_DAILY_PROMPT_LIMIT=str(BASIC_LIMIT),
        CLAIM_IDLE_SECONDS="5",
        RECONCILE_INTERVAL_SECONDS="1",
        RECONCILE_AFTER_SECONDS="30",
        GEMINI_CHUNK_TIMEOUT_SECONDS="2",
        RETRY_BUDGET_SECONDS="8",
    )
    stack = Stack(env, log_dir=LOG_DIR, cwd=tmp_path_factory.mktemp("reliability-stack"))
    try:
        stack.migrate()
        stack.start()
        stack.wait_healthy(START_TIMEOUT)
        yield World(stack=stack, infra=infra, data_dir=data_dir)
    finally:
        stack.stop()
        infra.stop()
        for name in ("postgres.log", "redis.log"):
            if (data_dir / name).exists():
                shutil.copy(data_dir / name, LOG_DIR / name)
