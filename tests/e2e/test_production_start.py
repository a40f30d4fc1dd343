"""Production fails closed: a service started as an operator would (``python -m <service>
serve``, no APP_ENV, so production) refuses to start on a placeholder secret or without a
real OTP delivery, and says why in one readable line instead of a traceback."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from dev.stack import REPO_ROOT

PLACEHOLDER = "replace-with-at-least-32-random-bytes"  # deploy/k8s/base/secret.example.yaml


def start(
    module: str, tmp_path, command: str = "serve", **env: str
) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    return subprocess.run(
        [sys.executable, "-m", module, command],
        env=keep | {"PYTHONPATH": str(REPO_ROOT)} | env,
        cwd=tmp_path,  # no .env here
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("module", ["gateway", "auth", "chat", "billing"])
def test_a_placeholder_jwt_secret_stops_the_start(module, tmp_path):
    done = start(module, tmp_path, JWT_SECRET=PLACEHOLDER)
    assert done.returncode == 2, done.stderr
    assert "Invalid configuration" in done.stderr
    assert "JWT_SECRET is a placeholder" in done.stderr
    assert "openssl rand" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_low_entropy_jwt_secret_stops_the_start(tmp_path):
    done = start("gateway", tmp_path, JWT_SECRET="a" * 48)
    assert done.returncode == 2
    assert "JWT_SECRET has too little entropy" in done.stderr


def test_auth_without_a_real_code_delivery_stops_the_start(tmp_path):
    good = secrets.token_urlsafe(48)
    missing = start("auth", tmp_path, JWT_SECRET=good)
    assert missing.returncode == 2
    assert "OTP_DELIVERY must be set in production" in missing.stderr
    for delivery in ("response", "log"):
        exposed = start("auth", tmp_path, JWT_SECRET=good, OTP_DELIVERY=delivery)
        assert exposed.returncode == 2
        assert "production needs OTP_DELIVERY=webhook" in exposed.stderr


def test_development_is_an_explicit_choice(tmp_path):
    """The same weak secret passes the configuration once APP_ENV=development says so (as
    `make run` does): `migrate` then gets as far as the (absent) database."""
    done = start(
        "chat",
        tmp_path,
        APP_ENV="development",
        JWT_SECRET="short",
        DATABASE_URL="postgresql://postgres@127.0.0.1:1/nothing",
        command="migrate",
    )
    assert "Invalid configuration" not in done.stderr
    assert done.returncode == 1
    assert "migrations.failed" in done.stderr
