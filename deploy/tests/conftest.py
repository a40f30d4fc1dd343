"""The kustomize overlays, each rendered once per test session (see k8s.py)."""

from __future__ import annotations

import pytest

from deploy.tests.k8s import K8S, Obj, render


class Rendered(dict[str, list[Obj]]):
    """Overlay name -> its objects, rendered on first use: a broken overlay fails the
    tests that read it, not the others."""

    def __missing__(self, overlay: str) -> list[Obj]:
        self[overlay] = objects = render(K8S / "overlays" / overlay)
        return objects


@pytest.fixture(scope="session")
def rendered() -> Rendered:
    return Rendered()
