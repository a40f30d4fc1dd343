"""dev/observe.py: the Prometheus config `make observe` and the end-to-end test generate.
That it scrapes a real stack is tests/e2e/test_observe.py's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from dev.observe import ALERTS, ObserveError, Prometheus, prometheus_config, scrape_targets
from dev.stack import Stack


def test_every_service_is_scraped_where_make_run_puts_it_and_no_simulator() -> None:
    stack = Stack({"PORT": "8100", "AUTH_URL": "http://localhost:9001"})

    assert scrape_targets(stack) == {
        "auth": "localhost:9001",
        "chat": "127.0.0.1:8002",
        "billing": "127.0.0.1:8003",
        "ai-worker": "127.0.0.1:8004",
        "gateway": "127.0.0.1:8100",
    }


def test_the_config_has_a_job_per_service_and_the_alert_rules() -> None:
    config = prometheus_config({"auth": "127.0.0.1:8001", "gateway": "127.0.0.1:8000"}, "1s")

    assert config["global"] == {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    assert config["rule_files"] == [str(ALERTS)] and ALERTS.is_absolute()
    assert config["scrape_configs"] == [
        {"job_name": "auth", "static_configs": [{"targets": ["127.0.0.1:8001"]}]},
        {"job_name": "gateway", "static_configs": [{"targets": ["127.0.0.1:8000"]}]},
    ]


def test_the_config_and_its_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH: `make test` installs Debian's prometheus package"
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(scrape_targets(Stack({})))))

    checked = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_missing_prometheus_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(ObserveError, match=r"make observe.*install Debian's prometheus"):
        Prometheus({}, tmp_path).start()
