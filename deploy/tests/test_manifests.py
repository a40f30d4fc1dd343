"""The rendered Kubernetes manifests: valid against the API schemas, and what the design
promises of them (hardened pods, probes, limits, one Deployment per service, migrations as
init containers, replicas, autoscalers, NetworkPolicies, config keys that are
real settings). Everything runs offline on `kubectl kustomize` output. KEDA's objects are
checked in test_keda.py."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from secrets import token_urlsafe
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from pydantic import AliasChoices

from deploy.tests.k8s import (
    K8S,
    OVERLAYS,
    REPO,
    SERVICES,
    WITH_DATABASE,
    Obj,
    containers,
    find,
    kubectl,
    main_container,
    one,
    pod_spec,
    vendored_schema,
)

# A floor (the preStop `sleep` action needs 1.30+) and the newest schemas that
# kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
AUTOSCALED = {"gateway", "ai-worker"}
SECRET = "gemini-secrets"


def workloads(objects: list[Obj]) -> list[Obj]:
    return [o for o in objects if o["kind"] in WORKLOAD_KINDS]


def deployment(objects: list[Obj], service: str) -> Obj:
    return one(objects, "Deployment", service)


# --- schemas ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_passes_strict_schema_validation(
    rendered: dict[str, list[Obj]], overlay: str, version: str
) -> None:
    errors = []
    for obj in rendered[overlay]:
        what = f"{obj['kind']}/{obj['metadata']['name']}"
        if vendored_schema(obj):
            continue  # a custom resource: test_keda.py validates it against its own schema
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{what}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            # The command line only warns; an unknown kind or apiVersion is a mistake here.
            errors.append(f"{what}: {exc.message}")
    assert not errors, f"overlays/{overlay} against Kubernetes {version}:\n" + "\n".join(errors)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_validate_command_accepts_the_overlay(overlay: str) -> None:
    """The pipeline a person runs: kubectl kustomize ... | kubernetes-validate --strict -."""
    rendered_yaml = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    version = KUBERNETES_VERSIONS[-1]
    done = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", version, "-"],
        input=rendered_yaml,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # It only warns about a kind it has no schema for: acceptable for the custom resources
    # the repository has schemas for (test_keda.py), a mistake for anything else.
    warned = re.findall(r"^WARN - .* kind (\S+) with api version (\S+) ", done.stdout, re.M)
    assert done.stdout.count("WARN") == len(warned), done.stdout
    for kind, api_version in warned:
        assert vendored_schema({"kind": kind, "apiVersion": api_version}), done.stdout


# --- one Deployment, Service, ServiceAccount, PodDisruptionBudget per service -------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_has_one_deployment_service_account_and_budget(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    objects = rendered[overlay]
    for service in SERVICES:
        dep = deployment(objects, service)
        svc = one(objects, "Service", service)
        one(objects, "ServiceAccount", service)
        pdb = one(objects, "PodDisruptionBudget", service)
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert pod_spec(dep)["serviceAccountName"] == service
        assert svc["spec"]["selector"].items() <= labels.items(), service
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), service
        ports = {p["name"]: p["containerPort"] for p in main_container(dep)["ports"]}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{service}: Service port {port} names no port"
        assert main_container(dep)["image"].split(":")[0].endswith(service), service


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_listens_where_its_settings_and_its_peers_say(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    """One port a service: its containerPort is SERVICE_PORTS' (the settings' default, which
    the process uses: no manifest sets PORT), and its Service and the URLs in config.env
    name the same."""
    from shared.settings import SERVICE_PORTS

    objects = rendered[overlay]
    config = [o for o in objects if o["kind"] == "ConfigMap" and "AUTH_URL" in o.get("data", {})]
    urls = {k: urlsplit(v) for c in config for k, v in c["data"].items() if k.endswith("_URL")}
    for service in SERVICES:
        app = main_container(deployment(objects, service))
        (port,) = app["ports"]
        assert port["containerPort"] == SERVICE_PORTS[service], service
        assert "PORT" not in {e["name"] for e in app.get("env", [])}, service
        (svc_port,) = one(objects, "Service", service)["spec"]["ports"]
        assert svc_port["port"] == SERVICE_PORTS[service], service
        url = urls.get(f"{service.upper()}_URL")
        if url is not None:
            assert (url.hostname, url.port) == (service, SERVICE_PORTS[service])
    assert {"AUTH_URL", "CHAT_URL", "BILLING_URL"} <= urls.keys()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_two_objects_share_a_kind_and_name(rendered: dict[str, list[Obj]], overlay: str) -> None:
    keys = [(o["kind"], o["metadata"]["name"]) for o in rendered[overlay]]
    assert len(keys) == len(set(keys))


# --- hardened pods ---------------------------------------------------------------------


def writable_root_allowed(overlay: str, workload: Obj, container: Obj) -> bool:
    # Tilt's live update writes the synced sources into the running `app` container.
    return overlay == "dev" and workload["kind"] == "Deployment" and container["name"] == "app"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_as_non_root_with_a_read_only_root_and_no_capabilities(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    for workload in workloads(rendered[overlay]):
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] > 0, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec.get("automountServiceAccountToken") is False, name
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in containers(workload):
            where = f"{name}/{container['name']}"
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in sc["capabilities"], where
            assert not sc.get("privileged", False), where
            if writable_root_allowed(overlay, workload, container):
                continue
            assert sc["readOnlyRootFilesystem"] is True, where
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp, f"{where}: read-only root without a writable /tmp"
            assert "emptyDir" in volumes[tmp[0]["name"]], where


def test_only_the_dev_overlay_makes_a_root_filesystem_writable(
    rendered: dict[str, list[Obj]],
) -> None:
    for workload in workloads(rendered["prod"]):
        for container in containers(workload):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_cpu_and_memory_requests_and_limits(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    for workload in workloads(rendered[overlay]):
        for container in containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= resources.get(kind, {}).keys(), f"{where}: {kind}"


# Where a service's liveness is more than "the process answers": the ai-worker's /livez
# fails once its consumer loop has died.
LIVENESS_PATHS = {"ai-worker": "/livez"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_are_probed_on_readyz_and_healthz(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    for service in SERVICES:
        app = main_container(deployment(rendered[overlay], service))
        ports = {p["name"] for p in app["ports"]} | {p["containerPort"] for p in app["ports"]}
        liveness = LIVENESS_PATHS.get(service, "/healthz")
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", liveness)):
            assert probe in app, f"{service}: no {probe}"
            get = app[probe]["httpGet"]
            assert get["path"] == path, f"{service}: {probe}"
            assert get["port"] in ports, f"{service}: {probe} port {get['port']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_has_readiness_and_liveness_probes(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    for workload in workloads(rendered[overlay]):
        for container in pod_spec(workload)["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                assert probe in container, f"{workload['metadata']['name']}: no {probe}"


# --- migrations ------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_with_a_database_migrate_in_an_init_container(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    for service in SERVICES:
        dep = deployment(rendered[overlay], service)
        inits = pod_spec(dep).get("initContainers", [])
        if service not in WITH_DATABASE:
            assert not inits, service
            continue
        (migrate,) = inits
        assert migrate["name"] == "migrate"
        assert migrate["args"] == ["migrate"], service
        assert migrate["image"] == main_container(dep)["image"], service
        env = {e["name"]: e for e in migrate["env"]}
        app_env = {e["name"]: e for e in main_container(dep)["env"]}
        assert env["DATABASE_URL"] == app_env["DATABASE_URL"], service


# --- replicas, autoscaling -------------------------------------------------------------


def autoscalers(objects: list[Obj]) -> dict[str, list[tuple[int, int]]]:
    """Deployment name -> (min, max) of each HorizontalPodAutoscaler and KEDA ScaledObject
    (which creates an HPA of its own) that scales it."""
    found: dict[str, list[tuple[int, int]]] = {}
    for hpa in find(objects, "HorizontalPodAutoscaler"):
        spec = hpa["spec"]
        assert spec["scaleTargetRef"]["apiVersion"] == "apps/v1"
        assert spec["scaleTargetRef"]["kind"] == "Deployment"
        bounds = (spec.get("minReplicas", 1), spec["maxReplicas"])
        found.setdefault(spec["scaleTargetRef"]["name"], []).append(bounds)
    for scaled in find(objects, "ScaledObject"):
        spec = scaled["spec"]
        # KEDA's defaults: apps/v1 Deployment, 0 to 100 replicas.
        assert spec["scaleTargetRef"].get("apiVersion", "apps/v1") == "apps/v1"
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        bounds = (spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100))
        found.setdefault(spec["scaleTargetRef"]["name"], []).append(bounds)
    return found


def min_replicas(objects: list[Obj], service: str) -> int:
    scaled = autoscalers(objects).get(service)
    if scaled:
        ((low, _),) = scaled
        return low
    return deployment(objects, service)["spec"].get("replicas", 1)


def test_prod_runs_at_least_two_pods_of_every_service(rendered: dict[str, list[Obj]]) -> None:
    for service in SERVICES:
        assert min_replicas(rendered["prod"], service) >= 2, service


def test_prod_autoscales_the_gateway_and_the_worker_each_with_one_autoscaler(
    rendered: dict[str, list[Obj]],
) -> None:
    """One autoscaler per Deployment (two would fight over its replica count), and it owns
    the count."""
    scaled = autoscalers(rendered["prod"])
    assert scaled.keys() == AUTOSCALED
    for name, bounds in scaled.items():
        assert len(bounds) == 1, f"{name} has {len(bounds)} autoscalers"
        ((low, high),) = bounds
        assert high > low, name
        # A fixed count in the Deployment would be reset by every `kubectl apply`.
        assert "replicas" not in deployment(rendered["prod"], name)["spec"], name


def test_dev_runs_one_replica_of_everything_without_autoscalers(
    rendered: dict[str, list[Obj]],
) -> None:
    assert not autoscalers(rendered["dev"])
    for workload in workloads(rendered["dev"]):
        assert workload["spec"]["replicas"] == 1, workload["metadata"]["name"]


# --- images ----------------------------------------------------------------------------


def test_prod_images_are_pinned_release_tags(rendered: dict[str, list[Obj]]) -> None:
    for workload in workloads(rendered["prod"]):
        for container in containers(workload):
            image = container["image"]
            name, _, tag = image.rpartition(":")
            pinned = "@sha256:" in image or (name and "/" not in tag and tag != "latest")
            assert pinned, f"{workload['metadata']['name']}: {image} is not pinned"
            assert not image.startswith("gemini/"), f"{image}: the development name"


def test_dev_images_are_the_ones_tilt_builds(rendered: dict[str, list[Obj]]) -> None:
    for service in SERVICES:
        for container in containers(deployment(rendered["dev"], service)):
            assert container["image"] == f"gemini/{service}"


# --- infrastructure for development ---------------------------------------------------------


def test_dev_postgres_keeps_its_data_on_a_volume_claim(rendered: dict[str, list[Obj]]) -> None:
    postgres = one(rendered["dev"], "StatefulSet", "postgres")
    claims = {c["metadata"]["name"] for c in postgres["spec"]["volumeClaimTemplates"]}
    mounts = {m["name"]: m["mountPath"] for m in main_postgres(postgres)["volumeMounts"]}
    assert mounts[claims.pop()] == "/var/lib/postgresql/data"


def main_postgres(statefulset: Obj) -> Obj:
    (container,) = pod_spec(statefulset)["containers"]
    return container


def test_dev_redis_persists_every_second_and_never_evicts(
    rendered: dict[str, list[Obj]],
) -> None:
    (config,) = [
        c for c in find(rendered["dev"], "ConfigMap") if c["metadata"]["name"].startswith("redis-")
    ]
    lines = {
        tuple(line.split(None, 1))
        for line in config["data"]["redis.conf"].splitlines()
        if line and not line.startswith("#")
    }
    assert {("appendonly", "yes"), ("appendfsync", "everysec")} <= lines
    assert ("maxmemory-policy", "noeviction") in lines  # the event streams live here
    redis = one(rendered["dev"], "StatefulSet", "redis")
    assert redis["spec"]["volumeClaimTemplates"]


def test_dev_database_urls_match_the_service_roles_postgres_creates(
    rendered: dict[str, list[Obj]],
) -> None:
    values = secret_values(rendered["dev"], "dev")
    credentials = secret_data(one(rendered["dev"], "Secret", "postgres-credentials"))
    postgres = main_postgres(one(rendered["dev"], "StatefulSet", "postgres"))
    database = {e["name"]: e.get("value") for e in postgres["env"]}["POSTGRES_DB"]
    for service in WITH_DATABASE:
        url = urlsplit(values[f"{service.upper()}_DATABASE_URL"])
        # The role is named after the service, and owns the schema of that name.
        assert url.username == service
        assert url.password == credentials[f"{service.upper()}_DB_PASSWORD"]
        assert (url.hostname, url.port, url.path) == ("postgres", 5432, f"/{database}")
    init = (K8S / "infra" / "postgres" / "10-service-roles.sh").read_text()
    (roles,) = re.findall(r"^for service in ([a-z -]+);", init, flags=re.MULTILINE)
    assert set(roles.split()) == WITH_DATABASE


# --- configuration: ConfigMap and Secret keys are real settings --------------------------


def secret_data(secret: Obj) -> dict[str, str]:
    if secret.get("data"):
        pytest.fail(f"{secret['metadata']['name']}: keep readable stringData in the repository")
    return dict(secret.get("stringData", {}))


def secret_values(objects: list[Obj], overlay: str) -> dict[str, str]:
    """gemini-secrets as the overlay has it: dev brings one, prod documents the example."""
    if overlay == "prod":
        assert not find(objects, "Secret", SECRET), "prod must never ship the Secret's values"
        example = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
        return secret_data(example)
    return secret_data(one(objects, "Secret", SECRET))


def config_values(objects: list[Obj], name: str) -> dict[str, str]:
    (config,) = [c for c in find(objects, "ConfigMap") if c["metadata"]["name"] == name]
    return config["data"]


def container_env(
    objects: list[Obj], overlay: str, container: Obj, secrets: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment a container starts with, resolved from the rendered objects (and
    ``secrets`` in place of the overlay's Secret, when given)."""
    env: dict[str, str] = {}
    secrets = secret_values(objects, overlay) if secrets is None else secrets
    for source in container.get("envFrom", []):
        env.update(config_values(objects, source["configMapRef"]["name"]))
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        assert ref["name"] == SECRET, var
        if ref["key"] in secrets:
            env[var["name"]] = secrets[ref["key"]]
        else:
            assert ref.get("optional"), f"{ref['key']} is missing from {SECRET} ({overlay})"
    return env


def settings_class(service: str) -> Any:
    module = importlib.import_module(f"{service.replace('-', '_')}.settings")
    return module.Settings


def setting_names(service: str) -> set[str]:
    names = set()
    for field, info in settings_class(service).model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {str(choice).upper() for choice in alias.choices}
        names.add(field.upper())
    return names


def env_example_names() -> set[str]:
    text = (REPO / ".env.example").read_text()
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_a_service_is_given_is_one_of_its_settings(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    all_settings = set().union(*(setting_names(s) for s in SERVICES))
    for service in SERVICES:
        known = setting_names(service)
        for container in containers(deployment(rendered[overlay], service)):
            for var in container.get("env", []):
                assert var["name"] in known, f"{service}: {var['name']} is not a setting"
            for source in container.get("envFrom", []):
                keys = config_values(rendered[overlay], source["configMapRef"]["name"])
                unknown = keys.keys() - all_settings - env_example_names()
                assert not unknown, f"ConfigMap keys no service reads: {sorted(unknown)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_container_starts_with_valid_settings(
    rendered: dict[str, list[Obj]], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real Settings classes accept the environment the manifests give (also the
    migrate init containers: settings are checked for every command); in production, once
    the example Secret's placeholders are replaced by real values."""
    secrets = None
    if overlay == "prod":
        secrets = secret_values(rendered["prod"], "prod") | operator_values()
    for service in SERVICES:
        for container in containers(deployment(rendered[overlay], service)):
            env = container_env(rendered[overlay], overlay, container, secrets)
            assert env["HOST"] == "0.0.0.0"
            monkeypatch.setattr(os, "environ", env)
            settings = settings_class(service)(_env_file=None)
            assert settings.app_env == ("development" if overlay == "dev" else "production")
            if container["name"] == "app":
                assert (
                    settings.port
                    == main_container(deployment(rendered[overlay], service))["ports"][0][
                        "containerPort"
                    ]
                )


def operator_values() -> dict[str, str]:
    """What an operator puts where the example Secret has placeholders."""
    return {
        "JWT_SECRET": token_urlsafe(48),
        "GOOGLE_GEMINI_API_KEY": "AIza" + token_urlsafe(30),
        "STRIPE_SECRET_KEY": "sk_live_" + token_urlsafe(32),
        "STRIPE_PUBLISHABLE_KEY": "pk_live_" + token_urlsafe(32),
        "STRIPE_WEBHOOK_SECRET": "whsec_" + token_urlsafe(32),
    }


def test_production_refuses_to_start_with_the_example_secret(
    rendered: dict[str, list[Obj]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copying the example Secret as it is stops every service that signs or checks tokens,
    with a message that names the problem."""
    for service in SERVICES:
        for container in containers(deployment(rendered["prod"], service)):
            env = container_env(rendered["prod"], "prod", container)
            if "JWT_SECRET" not in env:
                continue
            monkeypatch.setattr(os, "environ", env)
            with pytest.raises(ValueError, match="JWT_SECRET is a placeholder"):
                settings_class(service)(_env_file=None)


def test_simulators_are_given_only_options_and_variables_they_read(
    rendered: dict[str, list[Obj]],
) -> None:
    for name in ("gemini-sim", "stripe-sim"):
        app = main_container(one(rendered["dev"], "Deployment", name))
        module, *options = app["args"]
        # The simulator's own modules, and the command line both share (dev/simrun.py).
        files = [*REPO.joinpath(*module.split(".")).glob("*.py"), REPO / "dev" / "simrun.py"]
        source = "".join(p.read_text() for p in files)
        for option in options[::2]:
            assert f'"{option}"' in source, f"{name}: {option}"
        for var in app.get("env", []):
            assert f'"{var["name"]}"' in source, f"{name}: {var['name']}"


def test_the_example_secret_lists_every_key_prod_references(
    rendered: dict[str, list[Obj]],
) -> None:
    example = secret_values(rendered["prod"], "prod")
    dev = secret_values(rendered["dev"], "dev")
    referenced = {
        var["valueFrom"]["secretKeyRef"]["key"]
        for workload in workloads(rendered["prod"])
        for container in containers(workload)
        for var in container.get("env", [])
        if "valueFrom" in var
    }
    keda_refs = [  # read by KEDA
        ref
        for auth in find(rendered["prod"], "TriggerAuthentication")
        for ref in auth["spec"].get("secretTargetRef", [])
    ]
    assert {ref["name"] for ref in keda_refs} <= {SECRET}
    keda_keys = {ref["key"] for ref in keda_refs}
    referenced |= keda_keys
    assert referenced == example.keys()
    # Development has a value for every key but the optional webhook URL and those only
    # KEDA reads (no KEDA there).
    assert example.keys() - dev.keys() <= {"OTP_WEBHOOK_URL", *keda_keys}


# --- network policies (both overlays) ---------------------------------------------------


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True


def pod_labels(objects: list[Obj]) -> dict[str, dict[str, str]]:
    return {s: deployment(objects, s)["spec"]["template"]["metadata"]["labels"] for s in SERVICES}


# The peers in other namespaces that a policy may name: (namespace labels, pod labels).
MONITORING = {"kubernetes.io/metadata.name": "monitoring"}
NAMED_PEERS = {
    "prometheus": (MONITORING, {"app.kubernetes.io/name": "prometheus"}),
    "otel-collector": (MONITORING, {"app.kubernetes.io/name": "opentelemetry-collector"}),
}
OTLP_HTTP = ("TCP", 4318)


def named_peer(peer: Obj) -> str | None:
    """The NAMED_PEERS entry a peer selects exactly (and nothing more), if any."""
    for name, (namespace, pod) in NAMED_PEERS.items():
        exact = {
            "namespaceSelector": {"matchLabels": namespace},
            "podSelector": {"matchLabels": pod},
        }
        if peer == exact:
            return name
    return None


def peers(rule_peers: list[Obj] | None, labels: dict[str, dict[str, str]]) -> set[str]:
    """What a rule's from/to allows: service names, NAMED_PEERS, or "anywhere" for any
    other peer outside our pods."""
    if not rule_peers:
        return {"anywhere", *labels, *NAMED_PEERS}
    found: set[str] = set()
    for peer in rule_peers:
        if "podSelector" in peer and "namespaceSelector" not in peer and "ipBlock" not in peer:
            found |= {s for s, lab in labels.items() if selects(peer["podSelector"], lab)}
        else:
            found.add(named_peer(peer) or "anywhere")
    return found


def ports_of(rule: Obj) -> set[Any]:
    """(protocol, port) of each port a rule opens ("any" for a range's or a protocol's
    every port), or "any" when it names none: every port of every protocol."""
    opened: set[Any] = set()
    for port in rule.get("ports", []):
        number = port.get("port", "any") if "endPort" not in port else "any"
        opened.add((port.get("protocol", "TCP"), number))
    return opened or {"any"}


def every_port(opened: set[Any]) -> bool:
    return any(p == "any" or p[1] == "any" for p in opened)


def allowed(objects: list[Obj], service: str, direction: str) -> list[tuple[set[str], Any]]:
    """(peers, ports) of every rule that lets traffic in to / out of ``service``'s pods."""
    labels = pod_labels(objects)
    rules = []
    for policy in find(objects, "NetworkPolicy"):
        spec = policy["spec"]
        if not selects(spec["podSelector"], labels[service]):
            continue
        key = "from" if direction == "ingress" else "to"
        for rule in spec.get(direction, []):
            rules.append((peers(rule.get(key), labels), ports_of(rule)))
    return rules


def naming(rules: list[tuple[set[str], Any]], peer: str) -> list[tuple[set[str], Any]]:
    """The rules that open a path to ``peer`` by name, not as part of "anywhere"."""
    return [(p, ports) for p, ports in rules if peer in p and "anywhere" not in p]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_all_traffic_is_denied_by_default(rendered: dict[str, list[Obj]], overlay: str) -> None:
    deny = one(rendered[overlay], "NetworkPolicy", "default-deny")["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny


# Who may reach each service's pods, in every overlay: the gateway from anywhere; auth from
# the gateway and the services that ask it for revocation times; chat and billing from the
# gateway; all of them from Prometheus (/metrics).
INGRESS_FROM = {
    "auth": {"gateway", "chat", "billing", "prometheus"},
    "chat": {"gateway", "prometheus"},
    "billing": {"gateway", "prometheus"},
    "ai-worker": {"prometheus"},
}
# Which of our services each one reaches inside the cluster.
REACHES = {
    "gateway": {"auth", "chat", "billing"},
    "chat": {"auth"},
    "billing": {"auth"},
    "auth": set(),
    "ai-worker": set(),
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_can_be_reached_from_outside(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    objects = rendered[overlay]
    assert any("anywhere" in p for p, _ in allowed(objects, "gateway", "ingress"))
    for service in SERVICES:
        if service == "gateway":
            continue
        sources = set().union(*(p for p, _ in allowed(objects, service, "ingress")))
        assert sources == INGRESS_FROM[service], f"{service} is reachable from {sources}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_reaches_every_service_on_its_http_port_only(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    objects = rendered[overlay]
    for service in SERVICES:
        names = {p["name"] for p in main_container(deployment(objects, service))["ports"]}
        assert "http" in names, f"{service} has no http port to serve /metrics on"
        rules = naming(allowed(objects, service, "ingress"), "prometheus")
        assert rules, f"Prometheus cannot scrape {service}"
        for sources, opened in rules:
            assert sources == {"prometheus"}, f"{service}: {sources}"
            assert opened == {("TCP", "http")}, f"{service}: Prometheus may reach {opened}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_reach_postgres_redis_and_only_the_services_they_call(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    objects = rendered[overlay]
    for service in SERVICES:
        rules = allowed(objects, service, "egress")
        outside = set().union(*(ports for p, ports in rules if "anywhere" in p))
        assert not every_port(outside), f"{service} may reach any port outside"
        assert ("TCP", 6379) in outside, f"{service} cannot reach Redis"
        has_postgres = ("TCP", 5432) in outside
        assert has_postgres == (service in WITH_DATABASE), f"{service} and Postgres"
        assert ("UDP", 53) in outside  # DNS
        named = set().union(*(p for p, _ in rules if "anywhere" not in p))
        expected = REACHES[service] | {"otel-collector"}
        assert named == expected, f"{service} reaches {named}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_reach_the_trace_collector_on_otlp_http_only(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    objects = rendered[overlay]
    for service in SERVICES:
        rules = allowed(objects, service, "egress")
        to_collector = naming(rules, "otel-collector")
        assert to_collector, f"{service} cannot export its spans"
        for destinations, opened in to_collector:
            assert destinations == {"otel-collector"}, f"{service}: {destinations}"
            assert opened == {OTLP_HTTP}, f"{service} may reach the collector on {opened}"
        # ... and 4318 is not open to any other namespace.
        outside = set().union(*(ports for p, ports in rules if "anywhere" in p))
        assert OTLP_HTTP not in outside, f"{service} may send OTLP anywhere"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tracing_is_off_by_default_and_the_hint_points_where_the_policies_allow(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    for service in SERVICES:
        for container in containers(deployment(rendered[overlay], service)):
            assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in container_env(
                rendered[overlay], overlay, container
            ), service
    config = (K8S / "base" / "config.env").read_text()
    (hint,) = re.findall(r"^# OTEL_EXPORTER_OTLP_ENDPOINT=(\S+)$", config, flags=re.MULTILINE)
    url = urlsplit(hint)
    _, namespace = (url.hostname or "").split(".")
    assert {"kubernetes.io/metadata.name": namespace} == NAMED_PEERS["otel-collector"][0]
    assert ("TCP", url.port) == OTLP_HTTP
    # Uncommented, it is a key test_every_variable_a_service_is_given_is_one_of_its_settings
    # accepts (the services read it from the environment, not as a setting).
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in env_example_names()


def test_the_policies_header_lists_the_monitoring_paths() -> None:
    policies = (K8S / "components" / "network-policies" / "policies.yaml").read_text()
    header = policies.split("\napiVersion:", 1)[0]
    text = " ".join(" ".join(line.lstrip("#").split()) for line in header.splitlines())
    assert "Prometheus -> every service's http port (/metrics)" in text
    assert "every service -> the OpenTelemetry collector (OTLP/HTTP, TCP 4318)" in text
    assert "namespace `monitoring`" in text


def test_auths_internal_routes_are_said_to_be_cluster_only() -> None:
    policies = (K8S / "components" / "network-policies" / "policies.yaml").read_text()
    assert "internal routes" in policies
    assert "/internal" in policies


def test_prod_keeps_each_clients_own_address_at_the_load_balancer(
    rendered: dict[str, list[Obj]],
) -> None:
    gateway = one(rendered["prod"], "Service", "gateway")["spec"]
    assert gateway["type"] == "LoadBalancer"
    assert gateway["externalTrafficPolicy"] == "Local"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_believes_no_forwarded_addresses(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    """The gateway trusts no X-Forwarded-For by default; the services behind it (reachable
    only from inside, see the policies) believe what the gateway forwards."""
    for service in ("gateway", "auth", "chat", "billing"):
        env = {
            v["name"]: v.get("value")
            for v in main_container(deployment(rendered[overlay], service)).get("env", [])
        }
        assert env["FORWARDED_ALLOW_IPS"] == ("" if service == "gateway" else "*"), service


def test_prod_gateway_service_is_the_only_one_exposed(rendered: dict[str, list[Obj]]) -> None:
    for svc in find(rendered["prod"], "Service"):
        exposed = svc["spec"].get("type", "ClusterIP") != "ClusterIP"
        assert exposed == (svc["metadata"]["name"] == "gateway")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_namespace_enforces_the_restricted_pod_security_standard(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    (namespace,) = find(rendered[overlay], "Namespace")
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in rendered[overlay]:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace["metadata"]["name"]
