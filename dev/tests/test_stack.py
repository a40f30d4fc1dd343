from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import httpx
import psutil
import pytest

from dev.__main__ import _development_defaults
from dev.proc import free_port, port_is_open
from dev.stack import ServiceSpec, Stack, StackError, dev_jwt_secret, load_env_file

# A stand-in service: `python -m fakesvc migrate | serve`, serving /healthz on $PORT with the
# stdlib, and starting a grandchild to prove the whole process group is stopped.
FAKE_SERVICE = """
import json, os, subprocess, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

if sys.argv[1] == "migrate":
    print("applying 20260101_0000_create_things.sql")
    sys.exit(3 if os.environ.get("FAKE_MIGRATIONS_FAIL") else 0)
if os.environ.get("FAKE_CRASH"):
    sys.exit("boom: cannot start")

grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        keys = ("PORT", "GATEWAY_UPSTREAMS", "FAKE_URL", "FORWARDED_ALLOW_IPS")
        body = json.dumps({k: os.environ.get(k) for k in keys} | {"grandchild": grandchild.pid})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


@pytest.fixture
def fake_env(tmp_path: Path) -> dict[str, str]:
    package = tmp_path / "pkgs" / "fakesvc"
    package.mkdir(parents=True)
    (package / "__main__.py").write_text(textwrap.dedent(FAKE_SERVICE))
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(tmp_path / "pkgs"),
        "FAKE_URL": f"http://127.0.0.1:{free_port()}",
        "PORT": str(free_port()),
    }


SPECS = [
    ServiceSpec("fake", "fakesvc", "FAKE_URL", "http://127.0.0.1:1", True),
    ServiceSpec("edge", "fakesvc", "PORT", "http://127.0.0.1:2", False, upstream=False),
]


def test_stack_starts_services_until_healthy_and_stop_leaves_no_process(
    fake_env: dict[str, str], tmp_path: Path
) -> None:
    with Stack(fake_env, log_dir=tmp_path / "logs", specs=SPECS, cwd=tmp_path) as stack:
        stack.migrate()
        stack.start()
        stack.wait_healthy(timeout=20)
        seen = httpx.get(stack.url("edge") + "/env").json()
        processes = [psutil.Process(p.pid) for p in stack.processes.values()]
        processes.append(psutil.Process(seen["grandchild"]))

    assert seen["PORT"] == fake_env["PORT"]
    assert seen["GATEWAY_UPSTREAMS"] == "fake"
    assert seen["FAKE_URL"] == fake_env["FAKE_URL"]
    assert "create_things" in (tmp_path / "logs" / "fake.log").read_text()
    _, alive = psutil.wait_procs(processes, timeout=5)
    assert alive == []
    assert not port_is_open(stack.port("fake"))
    assert not port_is_open(stack.port("edge"))


def test_only_the_public_service_gets_the_configured_trusted_proxies(
    fake_env: dict[str, str], tmp_path: Path
) -> None:
    # FORWARDED_ALLOW_IPS in the environment (or .env) is meant for the public gateway; the
    # services behind it are reached only by the local gateway and believe only loopback.
    for configured in ("10.0.0.0/8", None):
        env = fake_env | ({"FORWARDED_ALLOW_IPS": configured} if configured else {})
        with Stack(env, log_dir=tmp_path / "logs", specs=SPECS, cwd=tmp_path) as stack:
            stack.start()
            stack.wait_healthy(timeout=20)
            behind = httpx.get(stack.url("fake") + "/env").json()
            public = httpx.get(stack.url("edge") + "/env").json()
        assert behind["FORWARDED_ALLOW_IPS"] == "127.0.0.1,::1"
        assert public["FORWARDED_ALLOW_IPS"] == configured


def test_failed_migrations_stop_the_start_with_their_output(
    fake_env: dict[str, str], tmp_path: Path
) -> None:
    stack = Stack(fake_env | {"FAKE_MIGRATIONS_FAIL": "1"}, log_dir=tmp_path, specs=SPECS)

    with pytest.raises(StackError, match=r"fake: migrations failed \(3\):\n.*create_things"):
        stack.migrate()


def test_a_service_that_exits_while_starting_is_reported_with_its_log(
    fake_env: dict[str, str], tmp_path: Path
) -> None:
    with Stack(fake_env | {"FAKE_CRASH": "1"}, ["fake"], tmp_path, specs=SPECS) as stack:
        stack.start()
        with pytest.raises(StackError, match=r"fake exited \(1\) while starting(.|\n)*boom"):
            stack.wait_healthy(timeout=20)


def test_unknown_service_names_are_refused() -> None:
    with pytest.raises(StackError, match="unknown services: nope"):
        Stack({}, ["nope"])


def test_the_development_jwt_secret_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    first = dev_jwt_secret(tmp_path / "data")
    second = dev_jwt_secret(tmp_path / "data")

    assert first == second
    assert len(first) >= 48
    assert stat.S_IMODE((tmp_path / "data" / "jwt_secret").stat().st_mode) == 0o600


def test_dot_env_does_not_override_the_real_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEV_TEST_REAL", "from-shell")
    monkeypatch.setenv("DEV_TEST_ONLY_IN_FILE", "placeholder")
    monkeypatch.delenv("DEV_TEST_ONLY_IN_FILE")  # restored (removed) after the test
    (tmp_path / ".env").write_text("DEV_TEST_REAL=from-file\nDEV_TEST_ONLY_IN_FILE=from-file\n")

    load_env_file(tmp_path / ".env")

    assert os.environ["DEV_TEST_REAL"] == "from-shell"
    assert os.environ["DEV_TEST_ONLY_IN_FILE"] == "from-file"


def test_development_defaults_keep_what_is_set(tmp_path: Path) -> None:
    env = {
        "NODE_ENV": "production",
        "PORT": "9000",
        "JWT_SECRET": "mine",
        "STRIPE_WEBHOOK_SECRET": "whsec_mine",
    }

    _development_defaults(env, tmp_path)

    assert env == {
        "NODE_ENV": "production",
        "PORT": "9000",
        "JWT_SECRET": "mine",
        "STRIPE_WEBHOOK_SECRET": "whsec_mine",
        "OTP_DELIVERY": "response",
        "CLIENT_URL": "http://localhost:9000",
    }


def test_development_generates_a_webhook_secret_once(tmp_path: Path) -> None:
    first: dict[str, str] = {}
    second: dict[str, str] = {}
    _development_defaults(first, tmp_path)
    _development_defaults(second, tmp_path)
    assert first["STRIPE_WEBHOOK_SECRET"].startswith("whsec_")
    assert first["STRIPE_WEBHOOK_SECRET"] == second["STRIPE_WEBHOOK_SECRET"]
