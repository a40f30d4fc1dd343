"""One version for the API and every package, written once (shared/src/shared/VERSION)."""

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

from shared.version import __version__

REPO = Path(__file__).resolve().parents[2]
VERSION_FILE = REPO / "shared" / "src" / "shared" / "VERSION"
PROJECTS = [REPO / "shared", *sorted(p.parent for p in REPO.glob("services/*/pyproject.toml"))]


def test_the_version_is_semantic() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__), __version__


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_every_package_takes_its_version_from_the_one_file(project: Path) -> None:
    config = tomllib.loads((project / "pyproject.toml").read_text())
    assert "version" not in config["project"], "a literal version drifts: read VERSION"
    assert "version" in config["project"]["dynamic"]
    source = project / config["tool"]["setuptools"]["dynamic"]["version"]["file"]
    # A service's VERSION is a relative symlink into shared/, which its image copies too.
    assert source.resolve() == VERSION_FILE


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_the_installed_package_has_the_version(project: Path) -> None:
    name = tomllib.loads((project / "pyproject.toml").read_text())["project"]["name"]
    assert importlib.metadata.version(name) == __version__, "installed before a bump: make install"


def test_the_changelogs_newest_release_is_the_version() -> None:
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (REPO / "CHANGELOG.md").read_text(), re.M)
    assert releases and releases[0] == __version__
