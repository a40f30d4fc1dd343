"""Loaded first by every service a benchmark starts (``bench/stackrun.py`` puts this
directory on its PYTHONPATH): the top-level packages named in ``BENCH_ABSENT_PACKAGES``
cannot be imported, so the service runs with what its image has, which is built from its
own requirements only (deploy/docker). The venv the benchmark runs from also holds the
tests' tools, which optional imports would otherwise find and load (structlog: rich;
PyJWT: cryptography; google-genai: Pillow): memory the deployed process does not spend.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

ABSENT = frozenset(filter(None, os.environ.get("BENCH_ABSENT_PACKAGES", "").split(",")))


class NotInstalled:
    """A finder that says a package outside the service's install is missing."""

    @staticmethod
    def find_spec(
        name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name.partition(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


if ABSENT:
    sys.meta_path.insert(0, NotInstalled)  # type: ignore[arg-type]
