"""KEDA's objects in the rendered overlays: the ai-worker scales on its backlog in Redis.

kubernetes-validate has no schema for KEDA's custom resources, so they are validated here
against the JSON Schemas in deploy/schemas/keda (written from KEDA's documentation; each
file says which version). Everything else in the overlays is validated by test_manifests.py.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from ai_worker.handlers import CHAT_STREAM, GROUP
from ai_worker.settings import Settings
from deploy.tests.k8s import (
    K8S,
    OVERLAYS,
    SCHEMAS,
    Obj,
    find,
    main_container,
    one,
    vendored_schema,
)

WORKER = "ai-worker"  # the Deployment
# What the redis-streams scaler takes from a TriggerAuthentication
# (keda.sh/docs/2.15/scalers/redis-streams, "Authentication Parameters"; pkg/scalers/
# redis_scaler.go also reads address, host and port from there).
REDIS_STREAMS_AUTH_PARAMETERS = {
    "address",
    "host",
    "port",
    "username",
    "password",
    "tls",
    "ca",
    "cert",
    "key",
    "keyPassword",
}


def keda_objects(objects: list[Obj]) -> list[Obj]:
    return [o for o in objects if o["apiVersion"].split("/")[0] == "keda.sh"]


def schema_errors(obj: Obj) -> list[str]:
    path = vendored_schema(obj)
    if path is None:
        return [f"no schema in deploy/schemas for {obj['kind']} {obj['apiVersion']}"]
    validator = jsonschema.Draft202012Validator(json.loads(path.read_text()))
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    ]


def worker_scaler(objects: list[Obj]) -> Obj:
    (scaled,) = [
        s for s in find(objects, "ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == WORKER
    ]
    return scaled


def triggers_on(scaled: Obj, target: str) -> list[Obj]:
    return [t for t in scaled["spec"]["triggers"] if target in t["metadata"]]


def worker_auth(objects: list[Obj]) -> dict[str, dict[str, str]]:
    """The worker's TriggerAuthentication (all its triggers share one): parameter ->
    secretTargetRef."""
    (name,) = {t["authenticationRef"]["name"] for t in worker_scaler(objects)["spec"]["triggers"]}
    auth = one(objects, "TriggerAuthentication", name)["spec"]
    return {ref["parameter"]: ref for ref in auth["secretTargetRef"]}


# --- the schemas --------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((SCHEMAS / "keda").glob("*.json")), ids=lambda p: p.name)
def test_vendored_schema_is_a_valid_json_schema_that_says_where_it_comes_from(
    path: Path,
) -> None:
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "KEDA 2." in schema["$comment"] and "keda.sh/docs/" in schema["$comment"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_keda_object_passes_its_vendored_schema(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    errors = [
        f"{obj['kind']}/{obj['metadata']['name']}: {error}"
        for obj in keda_objects(rendered[overlay])
        for error in schema_errors(obj)
    ]
    assert not errors, f"overlays/{overlay}:\n" + "\n".join(errors)


def _set(path: str, value: object) -> Callable[[Obj], None]:
    *parents, last = path.split(".")

    def mutate(obj: Obj) -> None:
        for part in parents:
            obj = obj[int(part)] if part.isdigit() else obj[part]
        if value is None:
            del obj[last]
        else:
            obj[last] = value

    return mutate


@pytest.mark.parametrize(
    ("kind", "mutate"),
    [
        # A key the scaler does not read (a typo) is silently ignored by KEDA.
        ("ScaledObject", _set("spec.triggers.1.metadata.lag", "64")),
        # The CRD's metadata is map[string]string: an unquoted number is refused on apply.
        ("ScaledObject", _set("spec.triggers.0.metadata.pendingEntriesCount", 48)),
        ("ScaledObject", _set("spec.triggers.0.metadata.stream", None)),
        ("ScaledObject", _set("spec.cooldown", 300)),
        ("ScaledObject", _set("spec.scaleTargetRef.name", None)),
        ("ScaledObject", _set("spec.triggers.0.authenticationRef.kind", "Secret")),
        (
            "ScaledObject",
            _set(
                "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown."
                "stabilizationWindowSeconds",
                7200,
            ),
        ),
        ("TriggerAuthentication", _set("spec.secretTargetRef.0.key", None)),
        ("TriggerAuthentication", _set("spec.secretTargetRef.0.secret", "gemini-secrets")),
    ],
)
def test_vendored_schemas_refuse_what_keda_would_refuse_or_ignore(
    rendered: dict[str, list[Obj]], kind: str, mutate: Callable[[Obj], None]
) -> None:
    (obj,) = copy.deepcopy(find(rendered["prod"], kind))
    mutate(obj)
    assert schema_errors(obj)


# --- what the worker's scaler promises -------------------------------------------------------


def test_dev_has_no_keda_objects(rendered: dict[str, list[Obj]]) -> None:
    """A development cluster has no KEDA (and one replica of everything)."""
    assert not keda_objects(rendered["dev"])


def test_prod_scales_the_worker_on_its_consumer_groups_backlog(
    rendered: dict[str, list[Obj]],
) -> None:
    objects = rendered["prod"]
    scaled = worker_scaler(objects)
    spec = scaled["spec"]
    target = spec["scaleTargetRef"]
    assert (target.get("apiVersion", "apps/v1"), target.get("kind", "Deployment")) == (
        "apps/v1",
        "Deployment",
    )
    one(objects, "Deployment", target["name"])
    assert spec["minReplicaCount"] >= 2
    assert spec["maxReplicaCount"] > spec["minReplicaCount"]
    # The consumer group and stream the worker reads (ai_worker.handlers).
    for trigger in spec["triggers"]:
        assert trigger["type"] == "redis-streams"
        assert trigger["metadata"]["stream"] == CHAT_STREAM
        assert trigger["metadata"]["consumerGroup"] == GROUP
    # One trigger on the replies in flight (XPENDING), one on the prompts waiting (lag):
    # a trigger with lagCount scales on lag alone, whatever else it says.
    (in_flight,) = triggers_on(scaled, "pendingEntriesCount")
    assert "lagCount" not in in_flight["metadata"]
    assert len(triggers_on(scaled, "lagCount")) == 1
    # The cooldown: between min and max, KEDA's HPA scales down (cooldownPeriod only
    # governs scaling to zero).
    scale_down = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert scale_down["stabilizationWindowSeconds"] >= 60


def test_prod_has_no_plain_autoscaler_on_the_worker(rendered: dict[str, list[Obj]]) -> None:
    """KEDA creates and owns the worker's HPA; a second one would fight it."""
    hpas = find(rendered["prod"], "HorizontalPodAutoscaler")
    assert WORKER not in {h["spec"]["scaleTargetRef"]["name"] for h in hpas}


def test_the_thresholds_follow_the_workers_concurrency(rendered: dict[str, list[Obj]]) -> None:
    """A pod is 3/4 busy at pendingEntriesCount and one pod's worth of prompts is lagCount
    (the comments in components/ai-worker-keda): both move with AI_WORKER_CONCURRENCY."""
    objects = rendered["prod"]
    app = main_container(one(objects, "Deployment", WORKER))
    env = {e["name"]: e.get("value") for e in app.get("env", [])}
    for source in app.get("envFrom", []):
        env = one(objects, "ConfigMap", source["configMapRef"]["name"])["data"] | env
    concurrency = int(
        env.get("AI_WORKER_CONCURRENCY") or Settings.model_fields["ai_worker_concurrency"].default
    )
    scaled = worker_scaler(objects)
    (in_flight,) = triggers_on(scaled, "pendingEntriesCount")
    (waiting,) = triggers_on(scaled, "lagCount")
    assert int(in_flight["metadata"]["pendingEntriesCount"]) == concurrency * 3 // 4
    assert int(waiting["metadata"]["lagCount"]) == concurrency


def test_the_scaler_reaches_redis_with_what_the_secret_says(
    rendered: dict[str, list[Obj]],
) -> None:
    """The TriggerAuthentication's keys are in gemini-secrets (test_manifests.py checks
    the example Secret lists them)."""
    objects = rendered["prod"]
    auth = worker_auth(objects)
    assert auth.keys() <= REDIS_STREAMS_AUTH_PARAMETERS
    assert {"address", "password"} <= auth.keys()
    for trigger in worker_scaler(objects)["spec"]["triggers"]:
        assert trigger["authenticationRef"].get("kind", "TriggerAuthentication") == (
            "TriggerAuthentication"
        )
        # Where Redis is comes from the Secret, never from the manifest.
        assert not {"address", "host", "port"} & trigger["metadata"].keys()


def test_the_example_secrets_redis_parts_are_its_redis_url(rendered: dict[str, list[Obj]]) -> None:
    """KEDA takes no URL: the example shows REDIS_URL and its parts agreeing, and the
    ScaledObject's databaseIndex is the URL's database."""
    example = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())["stringData"]
    auth = {name: example[ref["key"]] for name, ref in worker_auth(rendered["prod"]).items()}
    url = urlsplit(example["REDIS_URL"])
    assert auth["address"] == f"{url.hostname}:{url.port or 6379}"
    assert auth["password"] == (url.password or "")
    assert auth["tls"] == ("enable" if url.scheme == "rediss" else "disable")
    database = url.path.lstrip("/") or "0"
    for trigger in worker_scaler(rendered["prod"])["spec"]["triggers"]:
        assert trigger["metadata"].get("databaseIndex", "0") == database
