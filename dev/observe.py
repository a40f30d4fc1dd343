"""Prometheus for the local stack: Debian's ``prometheus`` as our child, scraping every
service's /metrics with the alert rules of deploy/observability loaded.

    with Prometheus(scrape_targets(stack), tmp_path, port, scrape_interval="1s") as prom:
        httpx.get(prom.url + "/api/v1/query", params={"query": "up"})

``python -m dev observe`` (``make observe``) runs it against the stack ``make run`` started;
tests/e2e/test_observe.py against the test stack, and runs every dashboard query on it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import yaml

from deploy.observability import ALERTS, as_promql, dashboard_exprs
from dev.proc import spawn, stop_all, tail
from dev.stack import SIMULATORS, Stack

DEFAULT_PORT = 9090
STOP_TIMEOUT = 10.0
# The classic graph page shows every panel named here, from the Grafana dashboard.
SCREENSHOT_PANELS = ("Consumer lag A", "p95 latency by route A")


class ObserveError(RuntimeError):
    pass


def scrape_targets(stack: Stack) -> dict[str, str]:
    """Job -> ``host:port`` of its /metrics: every service on its own port (the simulators
    have none). The job is the service's name, as the Kubernetes Service's (alerts.yaml)."""
    return {
        spec.name: urlsplit(stack.url(spec.name)).netloc
        for spec in stack.specs
        if spec.name not in SIMULATORS
    }


def prometheus_config(targets: Mapping[str, str], scrape_interval: str = "5s") -> dict[str, Any]:
    """A prometheus.yml: one job per target, and the alert rules evaluated as often as the
    targets are scraped."""
    return {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": scrape_interval,
        },
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }


class Prometheus:
    """Prometheus on 127.0.0.1:``port``, its config, log and storage under ``data_dir``."""

    def __init__(
        self,
        targets: Mapping[str, str],
        data_dir: Path,
        port: int = DEFAULT_PORT,
        *,
        scrape_interval: str = "5s",
    ) -> None:
        self.targets = dict(targets)
        self.data_dir = data_dir
        self.port = port
        self.scrape_interval = scrape_interval
        self.log = data_dir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        """Start it and wait until it is ready (its rules loaded)."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise ObserveError(
                "prometheus is not on PATH: `make observe` and `make test` install Debian's"
                " prometheus package (as root with apt-get); elsewhere install your"
                " distribution's"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(self.targets, self.scrape_interval)))
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        with open(self.log, "ab") as log:
            self.process = spawn(argv, output=log)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while not self._ready(client):
                if time.monotonic() > deadline:
                    raise ObserveError(f"prometheus was not ready within {timeout:.0f} s")
                time.sleep(0.1)

    def _ready(self, client: httpx.Client) -> bool:
        assert self.process is not None
        if (code := self.process.poll()) is not None:
            raise ObserveError(
                f"prometheus exited ({code}); last lines of {self.log}:\n{tail(self.log)}"
            )
        try:
            return client.get(self.url + "/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        """SIGTERM (it flushes its storage), SIGKILL after 10 s. Idempotent."""
        if self.process is not None:
            stop_all([(self.process, signal.SIGTERM)], STOP_TIMEOUT)

    def __enter__(self) -> Prometheus:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def graph_url(prometheus_url: str, exprs: list[str], range_input: str = "10m") -> str:
    """Prometheus's graph page showing ``exprs``, one graph each. Its address is where ``/``
    redirects to: /classic/graph in Debian's build, which has no React UI."""
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        page = client.get(prometheus_url + "/").headers.get("location", "/graph")
    params: dict[str, str] = {}
    for i, expr in enumerate(exprs):
        params |= {f"g{i}.expr": expr, f"g{i}.tab": "0", f"g{i}.range_input": range_input}
    return f"{prometheus_url}{urlsplit(page).path}?{urlencode(params)}"


def screenshot_exprs() -> list[str]:
    """The dashboard's consumer lag and request latency queries."""
    exprs = dashboard_exprs()
    return [as_promql(exprs[panel], "1m") for panel in SCREENSHOT_PANELS]


def screenshot(prometheus_url: str, path: Path) -> list[str]:
    """Save the graph page of :func:`screenshot_exprs` as a PNG (headless Chromium); returns
    the queries that have no data yet (their graphs are empty)."""
    exprs = screenshot_exprs()
    empty = []
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        for expr in exprs:
            try:
                found = client.get(prometheus_url + "/api/v1/query", params={"query": expr})
            except httpx.TransportError as exc:
                raise ObserveError(
                    f"no Prometheus answers at {prometheus_url} ({exc}): start `make observe`"
                ) from exc
            if not found.json()["data"]["result"]:
                empty.append(expr)
    chromium = shutil.which("chromium")
    if chromium is None:
        raise ObserveError("chromium is not on PATH: `make chromium` installs Debian's")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    argv = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1400,1760",
        "--virtual-time-budget=10000",
        f"--screenshot={path.resolve()}",
        graph_url(prometheus_url, exprs),
    ]
    done = subprocess.run(argv, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    if done.returncode != 0 or not path.exists():
        raise ObserveError(f"chromium failed ({done.returncode}):\n{done.stderr.decode()[-2000:]}")
    return empty
