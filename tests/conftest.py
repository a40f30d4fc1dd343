"""The whole stack as processes (the same launcher `make run` uses), on free ports, against
this test session's own database: shared by the end-to-end and the browser tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dev.stack import START_TIMEOUT, Stack, driven_stack_env
from shared.testing.otlp import Receiver

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
BASIC_LIMIT = 3


@pytest.fixture(scope="session")
def traces() -> Iterator[Receiver]:
    """Where the stack's services send their spans (OTLP over HTTP)."""
    with Receiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def stack(
    database_url: str,
    redis_url: str,
    jwt_secret: str,
    traces: Receiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    # Its own Redis database: the in-process suites use the streams of db 15 with the
    # same consumer group names, and must not share them with these processes.
    # E2E_REDIS_DB lets two test sessions share one Redis server without sharing streams.
    e2e_redis_url = redis_url.rsplit("/", 1)[0] + "/" + os.environ.get("E2E_REDIS_DB", "14")
    env = driven_stack_env(
        database_url=database_url,
        redis_url=e2e_redis_url,
        jwt_secret=jwt_secret,
        STRIPE_WEBHOOK_SECRET="whsec_e2e_Vb7Qm2Xs9Kd4Lp8Rz3Nw6Ty1Hc5Jf0Ga",
        GEMINI_SIM_TOKEN_DELAY_MS="20",
        BASIC_TIER_DAILY_PROMPT_LIMIT=str(BASIC_LIMIT),
        # Short deadlines, so crash recovery and dead letters are observable within a test.
        CLAIM_IDLE_SECONDS="5",
        MAX_DELIVERIES="3",
        RECONCILE_INTERVAL_SECONDS="1",
        RECONCILE_AFTER_SECONDS="60",
        RETRY_BUDGET_SECONDS="20",
        # Tracing on, as in production with a collector: every e2e test runs through it,
        # and tests/e2e/test_tracing.py reads the spans. Exported every 200 ms.
        OTEL_EXPORTER_OTLP_ENDPOINT=traces.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="200",
    )
    # Two sessions sharing a machine (E2E_REDIS_DB) keep their logs apart too.
    log_dir = ARTIFACTS / (
        "e2e-logs" + (f"-db{os.environ['E2E_REDIS_DB']}" if "E2E_REDIS_DB" in os.environ else "")
    )
    for old in log_dir.glob("*.log"):
        old.unlink()
    with Stack(env, log_dir=log_dir, cwd=tmp_path_factory.mktemp("stack")) as running:
        running.migrate()
        running.start()
        running.wait_healthy(START_TIMEOUT)
        yield running


@pytest.fixture
def basic_limit() -> int:
    return BASIC_LIMIT
