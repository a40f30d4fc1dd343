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


TEMPLATE = REPO / "deploy" / "docker" / "service.Dockerfile"


def build_args(service: str, rendered: dict[str, list[Obj]]) -> dict[str, str]:
    """What a build of ``service`` passes (Tilt passes the same: test_tiltfile), with the
    template's defaults: its directory, its package, its Deployment's port."""
    defaults, _ = parse(TEMPLATE)
    port = main_container(one(rendered["prod"], "Deployment", service))["ports"][0]
    return {
        **defaults,
        "SERVICE": service,
        "PACKAGE": service.replace("-", "_"),
        "PORT": str(port["containerPort"]),
    }


def test_there_is_one_dockerfile_for_the_services() -> None:
    assert not list((REPO / "services").glob("*/Dockerfile"))
    assert TEMPLATE.is_file()


@pytest.mark.parametrize("service", SERVICES)
def test_service_image_is_multi_stage_slim_and_installs_only_shared_and_itself(
    service: str, rendered: dict[str, list[Obj]]
) -> None:
    args = build_args(service, rendered)
    _, stages = parse(TEMPLATE)
    assert len(stages) >= 2, "a build stage and a runtime stage"
    for stage in stages:
        assert re.fullmatch(r"python:[\d.]+-slim(-\w+)?", expand(stage.base, args)), stage.base
    build, runtime = stages[0], stages[-1]
    installs = [expand(r, args) for r in values(build, "RUN") if "pip install" in r]
    assert installs == [f"pip install -c constraints.txt ./shared ./services/{service}"]
    assert not any("pip" in r for r in values(runtime, "RUN")), "install in the build stage"
    assert any(f"--from={build.name}" in c for c in values(runtime, "COPY"))


def test_service_image_runs_as_the_app_user_without_build_tools() -> None:
    _, stages = parse(TEMPLATE)
    runtime = stages[-1]
    users = values(runtime, "USER")
    assert users and users[-1].split(":")[0] == str(APP_UID), "non-root, by number"
    for run in values(runtime, "RUN"):
        assert not BUILD_TOOLS.search(run), f"build tools in the final stage: {run}"


@pytest.mark.parametrize("service", SERVICES)
def test_service_image_starts_the_service_as_the_manifests_expect(
    service: str, rendered: dict[str, list[Obj]]
) -> None:
    args = build_args(service, rendered)
    _, stages = parse(TEMPLATE)
    runtime = stages[-1]
    env = {k: expand(v, args) for k, v in env_of(runtime).items()}
    # The entrypoint runs `python -m $SERVICE_PACKAGE` with CMD's (or the args') words.
    entrypoint = json.loads(values(runtime, "ENTRYPOINT")[-1])
    assert entrypoint[:2] == ["/bin/sh", "-c"]
    assert entrypoint[2] == 'exec python -m "$SERVICE_PACKAGE" "$@"'
    assert env["SERVICE_PACKAGE"] == service.replace("-", "_")
    assert json.loads(values(runtime, "CMD")[-1]) == ["serve"]
    assert env["HOST"] == "0.0.0.0"
    deployment = one(rendered["prod"], "Deployment", service)
    port = main_container(deployment)["ports"][0]["containerPort"]
    assert [expand(v, args) for v in values(runtime, "EXPOSE")] == [str(port)]
    assert env["PORT"] == str(port)
    assert pod_spec(deployment)["securityContext"]["runAsUser"] == APP_UID
    for container in containers(deployment):
        assert "command" not in container, "args only: Tilt's restart wrapper replaces command"


def test_service_image_runs_in_production_unless_told_otherwise() -> None:
    """Fail closed: an image started without configuration refuses what production refuses
    (codes in responses, weak secrets, the simulators)."""
    _, stages = parse(TEMPLATE)
    assert env_of(stages[-1]).get("APP_ENV") == "production"


@pytest.mark.parametrize("service", SERVICES)
def test_service_image_carries_its_migrations_where_migrations_dir_points(
    service: str, rendered: dict[str, list[Obj]]
) -> None:
    args = build_args(service, rendered)
    _, stages = parse(TEMPLATE)
    build, runtime = stages[0], stages[-1]
    gathered = [expand(r, args) for r in values(build, "RUN") if "/app/migrations" in r]
    assert gathered == [
        f"mkdir -p /app/migrations && if [ -d services/{service}/migrations ];"
        f" then cp services/{service}/migrations/*.sql /app/migrations/; fi"
    ]
    assert (service in WITH_DATABASE) == (REPO / "services" / service / "migrations").is_dir()
    (copy,) = [c for c in values(runtime, "COPY") if "/app/migrations" in c]
    assert copy.startswith(f"--from={build.name} ")
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
