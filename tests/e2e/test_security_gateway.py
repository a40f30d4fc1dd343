"""Gateway holes from the security review, reproduced as an attacker would, through a stack
of processes started the way `make run` starts them.

The session's shared stack lifts the per-address limits (every test client is 127.0.0.1), so
this file starts a small stack of its own, auth behind the gateway, with a low one.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import httpx
import pytest

from dev.stack import LOCAL_CLIENT_LIMITS, START_TIMEOUT, Stack, free_port
from shared.testing.fixtures import random_mobile_number

pytestmark = pytest.mark.e2e

SENDS_PER_ADDRESS = 3
# Addresses an attacker writes into X-Forwarded-For (documentation ranges: only ever text).
SPOOFABLE = [f"198.51.100.{n}" for n in range(1, 255)] + [f"203.0.113.{n}" for n in range(1, 255)]


@pytest.fixture(scope="module")
def low_limit_stack(
    database_url: str, redis_url: str, jwt_secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Auth and the gateway, with at most ``SENDS_PER_ADDRESS`` code sends per address.

    It shares the session's database and the end-to-end Redis database with the shared
    stack (its auth is one more replica of the same service), so the tests below hold
    whatever that stack already counted for 127.0.0.1.
    """
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        APP_ENV="test",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url.rsplit("/", 1)[0] + "/" + os.environ.get("E2E_REDIS_DB", "14"),
        JWT_SECRET=jwt_secret,
        PORT=str(free_port()),
        AUTH_URL=f"http://127.0.0.1:{free_port()}",
        OTP_DELIVERY="response",
    )
    env.update(LOCAL_CLIENT_LIMITS, OTP_SENDS_PER_IP_PER_HOUR=str(SENDS_PER_ADDRESS))
    log_dir = tmp_path_factory.mktemp("low-limit-stack-logs")
    cwd = tmp_path_factory.mktemp("low-limit-stack")
    with Stack(env, ["auth", "gateway"], log_dir=log_dir, cwd=cwd) as running:
        running.migrate()
        running.start()
        running.wait_healthy(START_TIMEOUT)
        yield running


async def test_rotating_x_forwarded_for_does_not_escape_the_per_address_code_limit(
    low_limit_stack: Stack,
) -> None:
    spoofed = random.sample(SPOOFABLE, SENDS_PER_ADDRESS + 3)
    async with httpx.AsyncClient(base_url=low_limit_stack.url("gateway"), timeout=15) as api:
        answers = [
            await api.post(
                "/api/v1/auth/send-otp",
                json={"mobileNumber": random_mobile_number()},  # a fresh number each time
                headers={"X-Forwarded-For": address},
            )
            for address in spoofed
        ]
    # Unknown numbers: a send the limit let through answers 404 (the limit comes first).
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) <= {404, 429}, [answer.text for answer in answers]
    assert statuses.count(404) <= SENDS_PER_ADDRESS, statuses
    refused = [answer for answer in answers if answer.status_code == 429]
    assert refused, statuses
    for answer in refused:
        assert "from this network" in answer.json()["message"]
        assert int(answer.headers["retry-after"]) >= 1
