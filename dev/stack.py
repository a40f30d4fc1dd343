"""Start the services as processes: the one way `make run` and the end-to-end tests do it.

    env = {**os.environ, "DATABASE_URL": ..., "REDIS_URL": ..., "JWT_SECRET": ...}
    with Stack(env, log_dir=tmp_path) as stack:
        stack.migrate()
        stack.start()
        stack.wait_healthy(30)
        httpx.get(stack.url("gateway") + "/healthz")

Each service listens on the port of its URL variable (``AUTH_URL`` ...; the public gateway
on ``PORT``); every child gets all those URLs, and the gateway gets ``GATEWAY_UPSTREAMS``.
``FORWARDED_ALLOW_IPS`` from the environment is the public gateway's alone: the services
behind it are reached only by the local gateway, so they believe loopback and no one else.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, NamedTuple
from urllib.parse import urlsplit

import httpx
from dotenv import load_dotenv

from dev.proc import free_port, spawn, stop_all, tail
from shared.settings import local_url

__all__ = [
    "LOCAL_CLIENT_LIMITS",
    "SERVICES",
    "SIMULATORS",
    "START_TIMEOUT",
    "ServiceSpec",
    "Stack",
    "StackError",
    "driven_stack_env",
    "free_port",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
# The proxies a service behind the gateway believes: the local gateway.
LOOPBACK_PROXIES = "127.0.0.1,::1"
STOP_TIMEOUT = 10.0
MIGRATE_TIMEOUT = 120.0
# How long the services may take to answer /healthz after they start: the first start of
# a fresh checkout compiles every module it imports (pip installs without .pyc), five
# processes at once, which took over a minute on a loaded 2-core machine.
START_TIMEOUT = 180.0


class ServiceSpec(NamedTuple):
    name: str
    module: str  # run as `python -m <module> serve | migrate`
    url_env: str  # where its URL is published; "PORT" (a bare port) for the public gateway
    default_url: str
    has_migrations: bool
    upstream: bool = True  # the gateway routes requests to it (listed in GATEWAY_UPSTREAMS)
    command: tuple[str, ...] = ("serve",)  # after `python -m <module>`; PORT is in its env

    @property
    def public(self) -> bool:
        return self.url_env == "PORT"


# In start order: the gateway last, once its upstreams exist. A service without HTTP routes
# of its own (the ai-worker) is added with upstream=False.
SERVICES: list[ServiceSpec] = [
    ServiceSpec("auth", "auth", "AUTH_URL", local_url("auth"), True),
    ServiceSpec("chat", "chat", "CHAT_URL", local_url("chat"), True),
    ServiceSpec("billing", "billing", "BILLING_URL", local_url("billing"), True),
    # Started instead of Stripe when STRIPE_SECRET_KEY is unset (see dev/__main__.py).
    ServiceSpec(
        "stripe-sim",
        "dev.stripe_sim",
        "STRIPE_API_BASE",
        "http://127.0.0.1:12111",
        False,
        upstream=False,
        command=(),
    ),
    # Started instead of Gemini when GOOGLE_GEMINI_API_KEY is unset (see dev/__main__.py).
    ServiceSpec(
        "gemini-sim",
        "dev.gemini_sim",
        "GEMINI_BASE_URL",
        "http://127.0.0.1:8765",
        False,
        upstream=False,
        command=(),
    ),
    ServiceSpec(
        "ai-worker", "ai_worker", "AI_WORKER_URL", local_url("ai-worker"), False, upstream=False
    ),
    ServiceSpec("gateway", "gateway", "PORT", local_url("gateway"), False, upstream=False),
]
SIMULATORS = {"gemini-sim": "GOOGLE_GEMINI_API_KEY", "stripe-sim": "STRIPE_SECRET_KEY"}


class StackError(RuntimeError):
    pass


def load_env_file(path: Path = REPO_ROOT / ".env") -> None:
    """Load ``.env`` into ``os.environ``; variables already set win."""
    load_dotenv(path, override=False)


def dev_jwt_secret(data_dir: Path) -> str:
    """A development JWT secret, generated once and kept in ``<data_dir>/jwt_secret`` (0600)."""
    return dev_secret(data_dir, "jwt_secret")


def dev_secret(data_dir: Path, name: str, prefix: str = "") -> str:
    """A development secret, generated once and kept in ``<data_dir>/<name>`` (mode 0600)."""
    path = data_dir / name
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = prefix + secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
    return secret


class Stack:
    """The services as child processes. ``env`` is the children's whole environment."""

    def __init__(
        self,
        env: Mapping[str, str],
        services: list[str] | None = None,
        log_dir: Path | None = None,
        *,
        specs: Sequence[ServiceSpec] = SERVICES,
        cwd: Path = REPO_ROOT,
        service_env: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """``service_env``: variables for one service only, by its name, over ``env``."""
        known = {s.name: s for s in specs}
        unknown = set(services or []) - known.keys()
        if unknown:
            raise StackError(f"unknown services: {', '.join(sorted(unknown))}")
        self.specs = [s for s in specs if services is None or s.name in services]
        self.env = dict(env)
        self.service_env = {name: dict(values) for name, values in (service_env or {}).items()}
        self.log_dir = log_dir
        # The services read `.env` from their working directory too (pydantic-settings): the
        # tests pass an empty temporary dir so a developer's .env cannot change them.
        self.cwd = cwd
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def command(self, module: str, *argv: str) -> subprocess.CompletedProcess[str]:
        """``python -m <module> <argv>`` as an operator runs it, with this stack's settings
        (``dlq list``, ``rebuild``, ...): its exit code and output."""
        return subprocess.run(
            [sys.executable, "-m", module, *argv],
            env={**os.environ, **self.env},
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def url(self, name: str) -> str:
        """The base URL of service ``name``, e.g. ``http://127.0.0.1:8001``."""
        spec = next((s for s in self.specs if s.name == name), None)
        if spec is None:
            raise StackError(f"{name} is not part of this stack")
        if spec.public:
            port = self.env.get("PORT")
            return f"http://127.0.0.1:{port}" if port else spec.default_url
        return self.env.get(spec.url_env) or spec.default_url

    def port(self, name: str) -> int:
        port = urlsplit(self.url(name)).port
        if port is None:
            raise StackError(f"{name}: its URL {self.url(name)} names no port")
        return port

    def _child_env(self, spec: ServiceSpec) -> dict[str, str]:
        env = dict(self.env)
        env.update(self.service_env.get(spec.name, {}))
        env.update({s.url_env: self.url(s.name) for s in self.specs if not s.public})
        upstreams = [s.name for s in self.specs if s.upstream]
        env.update(GATEWAY_UPSTREAMS=",".join(upstreams), PORT=str(self.port(spec.name)))
        if not spec.public:
            # Set, not defaulted: a value meant for the gateway (in .env too) must not make
            # a service believe anyone but the local gateway.
            env["FORWARDED_ALLOW_IPS"] = LOOPBACK_PROXIES
        if any(s.name == "stripe-sim" for s in self.specs):
            # The Stripe simulator sends its webhooks through the gateway, like Stripe would,
            # and hands out checkout and portal page URLs on its own address.
            env.setdefault("STRIPE_SIM_WEBHOOK_URL", self.url("gateway") + "/api/v1/webhook/stripe")
            env.setdefault(
                "STRIPE_SIM_PUBLIC_URL", self.url("stripe-sim").replace("127.0.0.1", "localhost")
            )
        env.setdefault("PYTHONUNBUFFERED", "1")
        # The simulators live in dev/, which is not an installed package: importable from the
        # repository root whatever the working directory.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        return env

    def _log(self, name: str) -> IO[bytes] | None:
        if self.log_dir is None:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return open(self.log_dir / f"{name}.log", "ab")

    def _log_tail(self, name: str) -> str:
        if self.log_dir is None:
            return "(its output is above)"
        path = self.log_dir / f"{name}.log"
        return f"last lines of {path}:\n{tail(path)}"

    def migrate(self) -> None:
        """Run ``python -m <module> migrate`` for every service with migrations."""
        for spec in (s for s in self.specs if s.has_migrations):
            done = subprocess.run(
                [sys.executable, "-m", spec.module, "migrate"],
                env=self._child_env(spec),
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=MIGRATE_TIMEOUT,
            )
            output = (done.stdout + done.stderr).decode(errors="replace")
            if log := self._log(spec.name):
                with log:
                    log.write(output.encode())
            else:
                sys.stderr.write(output)
            if done.returncode != 0:
                raise StackError(f"{spec.name}: migrations failed ({done.returncode}):\n{output}")

    def _spawn(self, spec: ServiceSpec) -> None:
        log = self._log(spec.name)
        try:
            self.processes[spec.name] = spawn(
                [sys.executable, "-m", spec.module, *spec.command],
                env=self._child_env(spec),
                cwd=self.cwd,
                output=log,
            )
        finally:
            if log:
                log.close()

    def start(self) -> None:
        """Launch ``python -m <module> serve`` for each service."""
        for spec in self.specs:
            self._spawn(spec)

    def restart(self, name: str, timeout: float = 30.0) -> None:
        """Start one service again after it stopped (a fault test killed it), and wait
        until it is healthy."""
        spec = next((s for s in self.specs if s.name == name), None)
        if spec is None:
            raise StackError(f"{name} is not part of this stack")
        if (old := self.processes.get(name)) is not None and old.poll() is None:
            raise StackError(f"{name} is still running")
        self._spawn(spec)
        self.wait_healthy(timeout)

    def _healthy(self, name: str, client: httpx.Client) -> bool:
        if (code := self.processes[name].poll()) is not None:
            raise StackError(f"{name} exited ({code}) while starting; " + self._log_tail(name))
        try:
            return client.get(self.url(name) + "/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Poll each service's /healthz until it answers 200."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0, trust_env=False) as client:  # no proxy for 127.0.0.1
            for name in self.processes:
                while not self._healthy(name, client):
                    if time.monotonic() > deadline:
                        raise StackError(
                            f"{name} did not answer {self.url(name)}/healthz within "
                            f"{timeout:.0f} s; " + self._log_tail(name)
                        )
                    time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM every service, SIGKILL what is still running after 10 s. Idempotent."""
        stop_all(((p, signal.SIGTERM) for p in self.processes.values()), STOP_TIMEOUT)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# For stacks that tests and benchmarks drive: every client is 127.0.0.1, so the per-address
# limits (meant for one person's address) would stop them; the per-number limits still hold.
LOCAL_CLIENT_LIMITS = {
    "OTP_RESEND_COOLDOWN_SECONDS": "0",
    "OTP_SENDS_PER_IP_PER_HOUR": "1000000",
    "OTP_FAILURES_PER_IP_PER_HOUR": "1000000",
    "LOGIN_FAILURES_PER_IP_PER_HOUR": "1000000",
    "SIGNUPS_PER_IP_PER_HOUR": "1000000",
}

# What a child process may take from the environment of the test or benchmark that starts
# it; everything else it is given explicitly.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "SYSTEMROOT")


def driven_stack_env(
    *, database_url: str, redis_url: str, jwt_secret: str, **overrides: str
) -> dict[str, str]:
    """The environment of a stack that tests or a benchmark drive (tests/e2e, the
    reliability suite, bench): test mode, every service and simulator on a free port, the
    web client's URL on the gateway, codes in responses, LOCAL_CLIENT_LIMITS; then
    ``overrides`` (each suite's deadlines and simulator speed)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k in INHERITED}
    env.update(
        APP_ENV="test",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        JWT_SECRET=jwt_secret,
        PORT=str(port),
        AUTH_URL=f"http://127.0.0.1:{free_port()}",
        CHAT_URL=f"http://127.0.0.1:{free_port()}",
        BILLING_URL=f"http://127.0.0.1:{free_port()}",
        AI_WORKER_URL=f"http://127.0.0.1:{free_port()}",
        STRIPE_API_BASE=f"http://127.0.0.1:{free_port()}",
        GEMINI_BASE_URL=f"http://127.0.0.1:{free_port()}",
        # The web client is served by the gateway: Checkout returns to it.
        CLIENT_URL=f"http://127.0.0.1:{port}",
        OTP_DELIVERY="response",
        LOG_LEVEL="INFO",
    )
    env.update(LOCAL_CLIENT_LIMITS)
    env.update(overrides)
    return env
