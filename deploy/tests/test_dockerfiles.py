"""The Dockerfiles, read as text: no image can be built on these machines (no container
engine, no base images), so what can be checked without building is checked here."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from deploy.tests.dockerfile import env_of, expand, parse, values
from deploy.tests.k8s import (
    REPO,
    SERVICES,
    WITH_DATABASE,
    Obj,
    containers,
    main_container,
    one,
    pod_spec,
)

BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|cc|make|build-essential|apt-get|apk|python3?-dev)\b")
APP_UID = 10001


@pytest.mark.parametrize("service", SERVICES)
def test_service_image_is_multi_stage_slim_and_installs_only_shared_and_itself(
    service: str,
) -> None:
    args, stages = parse(REPO / "services" / service / "Dockerfile")
    assert len(stages) >= 2, "a build stage and a runtime stage"
    for stage in stages:
        assert re.fullmatch(r"python:[\d.]+-slim(-\w+)?", expand(stage.base, args)), stage.base
    build, runtime = stages[0], stages[-1]
    installs = [r for r in values(build, "RUN") if "pip install" in r]
    assert installs == [f"pip install -c constraints.txt ./shared ./services/{service}"]
    assert not any("pip" in r for r in values(runtime, "RUN")), "install in the build stage"
    assert any(f"--from={build.name}" in c for c in values(runtime, "COPY"))


@pytest.mark.parametrize("service", SERVICES)
def test_service_image_runs_as_the_app_user_without_build_tools(service: str) -> None:
    _, stages = parse(REPO / "services" / service / "Dockerfile")
    runtime = stages[-1]
    users = values(runtime, "USER")
    assert users and users[-1].split(":")[0] == str(APP_UID), "non-root, by number"
    for run in values(runtime, "RUN"):
        assert not BUILD_TOOLS.search(run), f"build tools in the final stage: {run}"


@pytest.mark.parametrize("service", SERVICES)
def test_service_image_starts_the_service_as_the_manifests_expect(
    service: str, rendered: dict[str, list[Obj]]
) -> None:
    _, stages = parse(REPO / "services" / service / "Dockerfile")
    runtime = stages[-1]
    package = service.replace("-", "_")
    assert json.loads(values(runtime, "ENTRYPOINT")[-1]) == ["python", "-m", package]
    assert json.loads(values(runtime, "CMD")[-1]) == ["serve"]
    env = env_of(runtime)
    assert env["HOST"] == "0.0.0.0"
    deployment = one(rendered["prod"], "Deployment", service)
    port = main_container(deployment)["ports"][0]["containerPort"]
    assert values(runtime, "EXPOSE") == [str(port)]
    assert env["PORT"] == str(port)
    assert pod_spec(deployment)["securityContext"]["runAsUser"] == APP_UID
    for container in containers(deployment):
        assert "command" not in container, "args only: Tilt's restart wrapper replaces command"


@pytest.mark.parametrize("service", SERVICES)
def test_service_image_runs_in_production_unless_told_otherwise(service: str) -> None:
    """Fail closed: an image started without configuration refuses what production refuses
    (codes in responses, weak secrets, the simulators)."""
    _, stages = parse(REPO / "services" / service / "Dockerfile")
    assert env_of(stages[-1]).get("APP_ENV") == "production"


@pytest.mark.parametrize("service", SERVICES)
def test_service_image_carries_its_migrations_where_migrations_dir_points(service: str) -> None:
    _, stages = parse(REPO / "services" / service / "Dockerfile")
    runtime = stages[-1]
    has_migrations = service in WITH_DATABASE
    copied = [c for c in values(runtime, "COPY") if f"services/{service}/migrations" in c]
    if not has_migrations:
        assert not copied and "MIGRATIONS_DIR" not in env_of(runtime)
        return
    (copy,) = copied
    destination = copy.split()[-1].rstrip("/")
    assert env_of(runtime)["MIGRATIONS_DIR"].rstrip("/") == destination


def test_shared_package_ships_its_sql_and_event_samples() -> None:
    """The images install shared/ as a wheel, not editable: its outbox/inbox SQL, event
    samples and VERSION file (shared.version reads it) must be package data."""
    config = tomllib.loads((REPO / "shared" / "pyproject.toml").read_text())
    data = config["tool"]["setuptools"]["package-data"]["shared"]
    assert {"sql/*.sql", "events/samples/*.json", "VERSION"} <= set(data)
    assert list((REPO / "shared" / "src" / "shared" / "sql").glob("*.sql"))


def test_simulator_image_is_multi_stage_and_non_root() -> None:
    _, stages = parse(REPO / "deploy" / "docker" / "simulators.Dockerfile")
    assert len(stages) >= 2
    runtime = stages[-1]
    assert values(runtime, "USER")[-1].split(":")[0] == str(APP_UID)
    for run in values(runtime, "RUN"):
        assert not BUILD_TOOLS.search(run), run
    assert any("-c /src/constraints.txt" in r for r in values(stages[0], "RUN"))


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_build_context() -> None:
    lines = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".data", "test-artifacts", ".env"} <= lines
