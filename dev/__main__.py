"""``python -m dev run`` starts the stack; ``python -m dev test [pytest args]`` runs the tests.

Both find or start Postgres and Redis first (see dev/infra.py) and stop whatever they
started on the way out, also on Ctrl-C and SIGTERM. ``python -m dev observe`` starts
Prometheus scraping the stack ``run`` started (dev/observe.py); ``python -m dev observe
--screenshot PATH`` saves a picture of that Prometheus's graphs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

from dev.infra import Infra, InfraError, ensure_infra
from dev.observe import (
    ALERTS,
    DEFAULT_PORT,
    ObserveError,
    Prometheus,
    graph_url,
    scrape_targets,
    screenshot,
    screenshot_exprs,
)
from dev.proc import port_is_open
from dev.stack import (
    REPO_ROOT,
    SERVICES,
    SIMULATORS,
    START_TIMEOUT,
    Stack,
    StackError,
    dev_jwt_secret,
    dev_secret,
    load_env_file,
)

USAGE = (
    "usage: python -m dev run | python -m dev test [pytest args...]"
    " | python -m dev observe [--screenshot PATH]"
)
TEST_ARTIFACTS = REPO_ROOT / "test-artifacts"
PYTEST_NO_TESTS = 5
# The suites that run the services as processes (tests/conftest.py): run beside the rest.
STACK_SUITES = "tests"
# Strict, on shared/ and the services' packages: [tool.mypy] in pyproject.toml.
MYPY = [sys.executable, "-m", "mypy"]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _shielded() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM while we clean up, so a second Ctrl-C cannot leave orphans."""
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _data_dir() -> Path:
    return Path(os.environ.get("DATA_DIR") or REPO_ROOT / ".data")


def _infra(data_dir: Path) -> Infra:
    return ensure_infra(data_dir, os.environ.get("EMBEDDED_INFRA", "auto"))


def _development_defaults(env: dict[str, str], data_dir: Path) -> None:
    if not env.get("APP_ENV") and not env.get("NODE_ENV"):
        env["APP_ENV"] = "development"
    env.setdefault("OTP_DELIVERY", "response")
    env.setdefault("PORT", "8000")
    # The web client is served by the gateway: Checkout returns to it.
    env.setdefault("CLIENT_URL", f"http://localhost:{env['PORT']}")
    if not env.get("JWT_SECRET"):
        env["JWT_SECRET"] = dev_jwt_secret(data_dir)
    if not env.get("STRIPE_WEBHOOK_SECRET"):
        env["STRIPE_WEBHOOK_SECRET"] = dev_secret(data_dir, "stripe_webhook_secret", "whsec_")


def _services(env: dict[str, str]) -> list[str]:
    """Every service; a simulator only where the real service's key is not configured."""
    return [s.name for s in SERVICES if not (s.name in SIMULATORS and env.get(SIMULATORS[s.name]))]


def _notes(env: dict[str, str], infra: Infra, services: list[str]) -> list[str]:
    notes = [f"embedded {name} (started by us, stops with us)" for name in sorted(infra.embedded)]
    if "stripe-sim" in services:
        notes.append(
            "STRIPE_SECRET_KEY is not set: payments go to the Stripe SIMULATOR (dev/stripe_sim); "
            "its checkout page's Pay button sends signed webhooks"
        )
    if "gemini-sim" in services:
        notes.append(
            "GOOGLE_GEMINI_API_KEY is not set: replies come from the Gemini SIMULATOR "
            "(dev/gemini_sim), not from Gemini"
        )
    if env.get("OTP_DELIVERY") == "response":
        notes.append("OTP codes are returned in API responses (OTP_DELIVERY=response)")
    return notes


def _metrics_urls(stack: Stack) -> list[str]:
    """Where each service serves /metrics (its own port; the simulators have none)."""
    return [f"{name} http://{target}/metrics" for name, target in scrape_targets(stack).items()]


def _supervise(children: Mapping[str, subprocess.Popen[bytes]]) -> int:
    """Wait until a child exits (1) or we are told to stop (KeyboardInterrupt)."""
    while True:
        for name, proc in children.items():
            if proc.poll() is not None:
                _say(f"error: {name} exited with code {proc.returncode}; stopping everything")
                return 1
        time.sleep(0.2)


def run() -> int:
    load_env_file()
    data_dir = _data_dir()
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored
        signal.signal(sig, _interrupt)
    cleanup = contextlib.ExitStack()  # unwinds last in, first out: services, then infra
    try:
        infra = _infra(data_dir)
        cleanup.callback(infra.stop)
        env = {**os.environ, "DATABASE_URL": infra.database_url, "REDIS_URL": infra.redis_url}
        _development_defaults(env, data_dir)
        services = _services(env)
        stack = cleanup.enter_context(Stack(env, services))
        stack.migrate()
        stack.start()
        stack.wait_healthy(START_TIMEOUT)
        print(f"Server is running on port {env['PORT']}", flush=True)
        print(f"Access it at: http://localhost:{env['PORT']}", flush=True)
        for note in _notes(env, infra, services):
            _say(f"note: {note}")
        _say("metrics (Prometheus): " + ", ".join(_metrics_urls(stack)))
        return _supervise({**infra.processes, **stack.processes})
    except KeyboardInterrupt:
        _say("stopping...")
        return 0
    except (InfraError, StackError) as exc:
        _say(f"error: {exc}")
        return 1
    finally:
        with _shielded():
            cleanup.close()


def _testpaths() -> list[str]:
    with open(REPO_ROOT / "pyproject.toml", "rb") as file:
        paths: list[str] = tomllib.load(file)["tool"]["pytest"]["ini_options"]["testpaths"]
    return paths


def _run_together(commands: list[tuple[list[str], Path | None]], env: dict[str, str]) -> list[int]:
    """Run the commands as children at once, each with its output to the terminal (None) or
    to a file, and wait for all. A terminal Ctrl-C reaches them directly (same process
    group) and they tear down cleanly; a SIGTERM to us becomes a SIGINT to each."""
    # Set before the start: a handler (unlike an inherited SIG_IGN) is reset for the child.
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    procs = []
    with contextlib.ExitStack() as files:
        for argv, log in commands:
            out = files.enter_context(open(log, "wb")) if log else None
            stderr = subprocess.STDOUT if log else None
            procs.append(subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=stderr))

        def forward(signum: int, frame: object) -> None:
            for proc in procs:
                proc.send_signal(signal.SIGINT)

        signal.signal(signal.SIGTERM, forward)
        return [proc.wait() for proc in procs]


def _pytests(pytest_args: list[str], env: dict[str, str]) -> int:
    """pytest with ``pytest_args``; with none, every suite in two processes at once: the
    stack suites (tests/: end-to-end, browser, fuzz, reliability), which mostly wait on the
    services they started, beside the in-process suites, which keep a core busy; with mypy
    beside them. The first two own their databases, Redis databases and ports (the stack
    suites' Redis is E2E_REDIS_DB). Their output: the in-process suites' and mypy's on the
    terminal, the stack suites' in test-artifacts/pytest-stack.log, printed after."""
    pytest = [sys.executable, "-m", "pytest"]
    if pytest_args:
        [code] = _run_together([([*pytest, *pytest_args], None)], env)
        return code
    TEST_ARTIFACTS.mkdir(exist_ok=True)
    stack_log = TEST_ARTIFACTS / "pytest-stack.log"
    mypy_log = TEST_ARTIFACTS / "mypy.log"
    in_process = [path for path in _testpaths() if path != STACK_SUITES]
    _say(f"the stack suites ({STACK_SUITES}/) run beside the others; their output follows theirs")
    codes = _run_together(
        [
            ([*pytest, "-p", "no:cacheprovider", STACK_SUITES], stack_log),
            (MYPY, mypy_log),
            ([*pytest, *in_process], None),
        ],
        env,
    )
    stack_code, mypy_code, in_process_code = codes
    _say(f"--- the stack suites ({STACK_SUITES}/), from {stack_log.relative_to(REPO_ROOT)}:")
    sys.stdout.write(stack_log.read_text(errors="replace"))
    _say("--- mypy:")
    sys.stdout.write(mypy_log.read_text(errors="replace"))
    if mypy_code:
        _say("error: `mypy` failed (`make typecheck` runs it alone)")
    if PYTEST_NO_TESTS in (stack_code, in_process_code):
        return PYTEST_NO_TESTS
    return in_process_code or stack_code or mypy_code


def test(pytest_args: list[str]) -> int:
    for check in (["check", "."], ["format", "--check", "."]):
        if code := subprocess.run([sys.executable, "-m", "ruff", *check], cwd=REPO_ROOT).returncode:
            _say(f"error: `ruff {' '.join(check)}` failed; `make format` fixes most of it")
            return code
    # mypy alone first for a chosen set of tests; beside the suites for all of them.
    if pytest_args and (code := subprocess.run(MYPY, cwd=REPO_ROOT).returncode):
        _say("error: `mypy` failed (`make typecheck` runs it alone)")
        return code
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        infra = _infra(_data_dir() / "test")
    except InfraError as exc:
        _say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    try:
        redis_url = os.environ.get("REDIS_URL") or infra.redis_url.rstrip("/") + "/15"
        env = {**os.environ, "DATABASE_URL": infra.database_url, "REDIS_URL": redis_url}
        _say(f"test artifacts (service logs of end-to-end runs) go to {TEST_ARTIFACTS.name}/")
        code = _pytests(pytest_args, env)
    finally:
        with _shielded():
            infra.stop()
    if code == PYTEST_NO_TESTS:
        _say("error: pytest collected no tests")
    return code


def _take_screenshot(prometheus_url: str, path: Path) -> int:
    try:
        empty = screenshot(prometheus_url, path)
    except ObserveError as exc:
        _say(f"error: {exc}")
        return 1
    print(f"saved {path}", flush=True)
    for expr in empty:
        _say(f"warning: no data yet for {expr} (send some prompts first): its graph is empty")
    return 0


def observe(argv: list[str]) -> int:
    """Prometheus scraping the services at the addresses `make run` gives them (the same
    environment and .env), until Ctrl-C; its data stays in <DATA_DIR>/prometheus."""
    load_env_file()
    port = int(os.environ.get("PROMETHEUS_PORT") or DEFAULT_PORT)
    if argv[:1] == ["--screenshot"] and len(argv) == 2:
        return _take_screenshot(f"http://127.0.0.1:{port}", Path(argv[1]))
    if argv:
        _say(USAGE)
        return 2
    stack = Stack(os.environ)  # for the services' addresses: nothing is started
    targets = scrape_targets(stack)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    prometheus = Prometheus(targets, _data_dir() / "prometheus", port)
    try:
        prometheus.start()
        url = f"http://localhost:{port}"
        print(f"Prometheus is running at {url}", flush=True)
        _say(
            f"scraping {', '.join(targets)} every {prometheus.scrape_interval}; alert rules"
            f" from {ALERTS.relative_to(REPO_ROOT)} ({url}/alerts); data in {prometheus.data_dir}"
        )
        if not port_is_open(stack.port("gateway")):
            _say(f"note: nothing answers at {stack.url('gateway')}: start the stack (`make run`)")
        _say(
            "dashboards: import deploy/observability/grafana-dashboard.json into a Grafana with"
            f" {url} as its Prometheus data source, or graph a panel's query here"
            " ($__rate_interval -> 1m); its consumer lag and latency: "
            + graph_url(prometheus.url, screenshot_exprs()).replace(prometheus.url, url)
        )
        _say("`python -m dev observe --screenshot docs/prometheus.png` saves those graphs")
        assert prometheus.process is not None
        return _supervise({"prometheus": prometheus.process})
    except KeyboardInterrupt:
        _say("stopping...")
        return 0
    except ObserveError as exc:
        _say(f"error: {exc}")
        return 1
    finally:
        with _shielded():
            prometheus.stop()


def main(argv: list[str]) -> int:
    if argv[:1] == ["run"] and len(argv) == 1:
        return run()
    if argv[:1] == ["test"]:
        return test(argv[1:])
    if argv[:1] == ["observe"]:
        return observe(argv[1:])
    _say(USAGE)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
