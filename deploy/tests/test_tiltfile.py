"""The Tiltfile, evaluated offline: Tilt itself cannot be installed here, so the file runs
in starlark-pyo3 (the Starlark interpreter of starlark-rust) with Tilt's functions replaced
by stubs that record the calls. The records are checked against the rendered dev manifests
and the Dockerfiles: every image it builds is used, every resource it names exists."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import starlark
import yaml

from deploy.tests.dockerfile import env_of, expand, parse, values
from deploy.tests.k8s import REPO, SERVICES, WITH_DATABASE, Obj, containers, pod_spec
from deploy.tests.test_dockerfiles import build_args

DEV_OVERLAY = "deploy/k8s/overlays/dev"
SIMULATORS = {"gemini-sim", "stripe-sim"}
KEYS = {
    "GOOGLE_GEMINI_API_KEY": "AIza-test",
    "STRIPE_SECRET_KEY": "sk_test_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_x",
}


@dataclass
class Tilt:
    """What the Tiltfile asked of Tilt."""

    env: dict[str, str]
    dev_yaml: str
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    local_resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    objects: list[Obj] = field(default_factory=list)

    # --- stubs of Tilt's built-in functions (https://docs.tilt.dev/api.html) --------------

    def kustomize(self, path: str) -> str:
        assert path == DEV_OVERLAY
        return self.dev_yaml

    def k8s_yaml(self, blob: str) -> None:
        self.objects += [o for o in yaml.safe_load_all(blob) if o]

    def decode_yaml_stream(self, blob: str) -> list[Obj]:
        return [o for o in yaml.safe_load_all(blob) if o]

    def encode_yaml_stream(self, objects: list[Obj]) -> str:
        return yaml.safe_dump_all(objects)

    def k8s_resource(self, workload: str, **kwargs: Any) -> None:
        assert workload not in self.resources, f"k8s_resource({workload!r}) twice"
        self.resources[workload] = kwargs

    def local_resource(self, name: str, cmd: str, **kwargs: Any) -> None:
        self.local_resources[name] = {"cmd": cmd, **kwargs}

    def docker_build(self, ref: str, context: str, **kwargs: Any) -> None:
        assert ref not in self.images, f"{ref} built twice"
        self.images[ref] = {"context": context, **kwargs}

    def sync(self, local_path: str, remote_path: str) -> dict[str, str]:
        return {"sync": local_path, "to": remote_path}

    def fall_back_on(self, files: list[str] | str) -> dict[str, list[str]]:
        return {"fall_back_on": [files] if isinstance(files, str) else files}

    def run(self, cmd: str) -> dict[str, str]:
        return {"run": cmd}

    def getenv(self, key: str, default: str | None = None) -> str | None:
        return self.env.get(key, default)

    # --- ext://restart_process: records the build with its entrypoint ------------------

    def docker_build_with_restart(
        self, ref: str, context: str, entrypoint: list[str], live_update: list[Any], **kwargs: Any
    ) -> None:
        assert live_update, "the extension needs at least one live_update step"
        self.docker_build(ref, context, entrypoint=entrypoint, live_update=live_update, **kwargs)

    def builtins(self) -> dict[str, Callable[..., Any]]:
        names = [
            "kustomize", "k8s_yaml", "decode_yaml_stream", "encode_yaml_stream", "k8s_resource",
            "local_resource", "docker_build", "sync", "fall_back_on", "run",
        ]  # fmt: skip
        return {name: getattr(self, name) for name in names}

    def load(self, path: str) -> starlark.FrozenModule:
        extensions = {"ext://restart_process": ["docker_build_with_restart"]}
        assert path in extensions, f"load({path!r}): an extension the stubs do not know"
        module = starlark.Module()
        for name in extensions[path]:
            module.add_callable(name, getattr(self, name))
        return module.freeze()


def evaluate(env: dict[str, str], dev_objects: list[Obj]) -> Tilt:
    tilt = Tilt(env, yaml.safe_dump_all(dev_objects))
    dialect = starlark.Dialect.extended()  # Tilt allows `if` and `for` at the top level
    globals_ = starlark.Globals.extended_by(
        [starlark.LibraryExtension.StructType, starlark.LibraryExtension.Print]
    )
    module = starlark.Module()
    for name, function in tilt.builtins().items():
        module.add_callable(name, function)
    module.add_callable("_getenv", tilt.getenv)
    module["TRIGGER_MODE_MANUAL"] = "manual"
    module["TRIGGER_MODE_AUTO"] = "auto"
    starlark.eval(module, starlark.parse("prelude", "os = struct(getenv = _getenv)"), globals_)
    source = (REPO / "Tiltfile").read_text()
    ast = starlark.parse("Tiltfile", source, dialect)
    starlark.eval(module, ast, globals_, starlark.FileLoader(tilt.load))
    return tilt


@pytest.fixture(scope="module")
def simulated(rendered: dict[str, list[Obj]]) -> Tilt:
    """`tilt up` with no API keys: the simulators run."""
    return evaluate({}, rendered["dev"])


@pytest.fixture(scope="module")
def with_keys(rendered: dict[str, list[Obj]]) -> Tilt:
    """`tilt up` with Gemini and Stripe keys in the environment."""
    return evaluate(KEYS, rendered["dev"])


def workload_names(objects: list[Obj]) -> set[str]:
    return {o["metadata"]["name"] for o in objects if o["kind"] in ("Deployment", "StatefulSet")}


def images_used(objects: list[Obj]) -> set[str]:
    return {
        c["image"]
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet")
        for c in containers(o)
    }


@pytest.mark.parametrize("variant", ["simulated", "with_keys"])
def test_every_image_tilt_builds_is_used_and_every_image_of_ours_is_built(
    variant: str, request: pytest.FixtureRequest
) -> None:
    tilt: Tilt = request.getfixturevalue(variant)
    ours = {i for i in images_used(tilt.objects) if i.startswith("gemini/")}
    assert set(tilt.images) == ours


@pytest.mark.parametrize("variant", ["simulated", "with_keys"])
def test_every_resource_the_tiltfile_names_exists_in_the_manifests(
    variant: str, request: pytest.FixtureRequest
) -> None:
    tilt: Tilt = request.getfixturevalue(variant)
    workloads = workload_names(tilt.objects)
    assert set(tilt.resources) <= workloads
    known = workloads | set(tilt.local_resources)
    for name, options in tilt.resources.items():
        missing = set(options.get("resource_deps", [])) - known
        assert not missing, f"{name} depends on unknown {missing}"


def test_without_keys_the_simulators_run_and_the_services_wait_for_them(
    simulated: Tilt,
) -> None:
    assert workload_names(simulated.objects) >= SIMULATORS
    assert simulated.resources.keys() >= SIMULATORS
    assert "gemini-sim" in simulated.resources["ai-worker"]["resource_deps"]
    assert "stripe-sim" in simulated.resources["billing"]["resource_deps"]


def test_with_keys_the_simulators_are_left_out_and_the_keys_handed_over(
    with_keys: Tilt,
) -> None:
    assert not SIMULATORS & workload_names(with_keys.objects)
    assert not any(o["metadata"]["name"] in SIMULATORS for o in with_keys.objects)
    (config,) = [
        o
        for o in with_keys.objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("gemini-config")
    ]
    assert not {"GEMINI_BASE_URL", "STRIPE_API_BASE"} & config["data"].keys()
    (secret,) = [o for o in with_keys.objects if o["metadata"]["name"] == "gemini-secrets"]
    assert KEYS.items() <= secret["stringData"].items()
    assert "gemini/simulators" not in with_keys.images


def test_services_wait_for_postgres_and_redis(simulated: Tilt) -> None:
    for service in SERVICES:
        deps = set(simulated.resources[service]["resource_deps"])
        assert "redis" in deps
        assert ("postgres" in deps) == (service in WITH_DATABASE)


def test_the_gateway_is_forwarded_to_localhost_8000(simulated: Tilt) -> None:
    assert "8000:8000" in simulated.resources["gateway"]["port_forwards"]


def test_every_service_has_a_manual_test_resource(simulated: Tilt) -> None:
    for service in SERVICES:
        test = simulated.local_resources[f"test-{service}"]
        assert test["trigger_mode"] == "manual"
        assert test["auto_init"] is False
        assert f"services/{service}" in test["cmd"]


@pytest.mark.parametrize("service", SERVICES)
def test_live_update_syncs_into_where_the_image_installed_the_code(
    service: str, simulated: Tilt, rendered: dict[str, list[Obj]]
) -> None:
    build = simulated.images[f"gemini/{service}"]
    dockerfile = REPO / build["dockerfile"]
    args, stages = parse(dockerfile)
    runtime = stages[-1]
    package = service.replace("-", "_")
    # The image Tilt builds is the one production builds (test_dockerfiles.build_args)...
    image_args = build_args(service, rendered)
    assert {**args, **build["build_args"]} == image_args
    # ... and the process Tilt restarts is the one the image runs.
    assert build["entrypoint"] == ["python", "-m", package]
    assert expand(env_of(runtime)["SERVICE_PACKAGE"], image_args) == package
    site_packages = f"/opt/venv/lib/python{args['PYTHON_VERSION']}/site-packages"
    syncs = [step for step in build["live_update"] if "sync" in step]
    assert {(s["sync"], s["to"]) for s in syncs} == {
        ("shared/src/shared", f"{site_packages}/shared"),
        (f"services/{service}/src/{package}", f"{site_packages}/{package}"),
    }
    # ... and those directories belong to the user the container runs as.
    chowned = [expand(c, image_args) for c in values(runtime, "COPY") if "--chown=app:app" in c]
    for sync in syncs:
        assert any(c.endswith(sync["to"]) for c in chowned), sync["to"]
    for step in build["live_update"]:
        for path in step.get("fall_back_on", []):
            assert (REPO / path).exists(), path
    # The restart file lives in the runtime stage's WORKDIR, which the app user owns.
    assert build["restart_file"].rsplit("/", 1)[0] == values(runtime, "WORKDIR")[-1]
    assert any(re.search(r"install -d -o app -g app /app\b", r) for r in values(runtime, "RUN"))


def test_every_build_context_path_exists(simulated: Tilt) -> None:
    for ref, build in simulated.images.items():
        assert (REPO / build["dockerfile"]).is_file(), ref
        for path in build.get("only", []):
            assert (REPO / path).exists(), f"{ref}: {path}"


def test_tilt_built_containers_use_args_not_command(simulated: Tilt) -> None:
    """Tilt's restart wrapper replaces the image's entrypoint; a `command` would bypass it."""
    for obj in simulated.objects:
        if obj["kind"] == "Deployment":
            for container in pod_spec(obj)["containers"]:
                assert "command" not in container, obj["metadata"]["name"]
