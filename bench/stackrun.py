"""Start Postgres, Redis and a stack of services for a benchmark, the way `make run` does."""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg import sql

from bench.procstats import absent_packages
from dev.infra import Infra, ensure_infra
from dev.stack import REPO_ROOT, Stack, driven_stack_env

# The distribution each service's image installs (deploy/docker).
DISTRIBUTIONS = {
    "auth": "gemini-auth",
    "chat": "gemini-chat",
    "billing": "gemini-billing",
    "gateway": "gemini-gateway",
    "ai-worker": "gemini-ai-worker",
}
INSTALLED_ONLY = Path(__file__).resolve().parent / "installed_only"


@functools.cache
def installed_only() -> dict[str, dict[str, str]]:
    """Each service's variables that hide from it every package its own install would not
    have (bench/installed_only/sitecustomize.py), so it runs, and its memory is measured,
    as in its image. The simulators are the benchmark's, not services: they see the venv."""
    return {
        name: {
            "PYTHONPATH": str(INSTALLED_ONLY),
            "BENCH_ABSENT_PACKAGES": ",".join(absent_packages(distribution)),
        }
        for name, distribution in DISTRIBUTIONS.items()
    }


@contextlib.contextmanager
def bench_stack(services: list[str], extra_env: dict[str, str]) -> Iterator[Stack]:
    """A fresh database and Redis db 13 (flushed), the given services on free ports;"""
    infra = bench_infra()
    redis_url = urlsplit(infra.redis_url)._replace(path="/13").geturl()
    try:
        with fresh_database(infra.database_url) as database_url:
            env = driven_stack_env(
                database_url=database_url,
                redis_url=redis_url,
                jwt_secret=secrets.token_urlsafe(48),
                **{"LOG_LEVEL": "WARNING", **extra_env},
            )
            redis.Redis.from_url(redis_url).flushdb()
            with (
                tempfile.TemporaryDirectory() as cwd,
                Stack(
                    env,
                    services,
                    log_dir=REPO_ROOT / "test-artifacts" / "bench-logs",
                    cwd=Path(cwd),
                    service_env=installed_only(),
                ) as stack,
            ):
                stack.migrate()
                stack.start()
                stack.wait_healthy(60)
                yield stack
    finally:
        infra.stop()


def bench_infra() -> Infra:
    """Postgres and Redis found or started as `make run` does (``.data/bench``)."""
    return ensure_infra(
        Path(os.environ.get("DATA_DIR") or REPO_ROOT / ".data") / "bench",
        os.environ.get("EMBEDDED_INFRA", "auto"),
    )


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``server_url``, dropped afterwards."""
    dbname = f"gb_bench_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{dbname}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "max": ordered[-1]}


def wait_drained(stack: Stack, timeout: float = 180.0) -> None:
    """Wait until the pipeline has caught up: chat's outbox published, and every consumer
    group on the event streams with nothing pending and nothing left to read."""
    r = redis.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True)
    deadline = time.monotonic() + timeout
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
        while True:
            backlog = conn.execute(
                "SELECT count(*) FROM chat.outbox WHERE published_at IS NULL"
            ).fetchone()[0]
            for stream in ("chat.events", "ai.events"):
                if r.exists(stream):
                    for group in r.xinfo_groups(stream):
                        backlog += int(group.get("lag") or 0) + int(group["pending"])
            if backlog == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the pipeline did not drain in {timeout:.0f} s ({backlog} left)"
                )
            time.sleep(0.5)
