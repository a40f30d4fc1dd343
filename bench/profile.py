"""Where the time goes: py-spy samples of the stack's processes while a load runs, summed by
the function on top of each stack (its own time) and by the package that function is in.

py-spy reads the processes' memory (ptrace): as root, or with CAP_SYS_PTRACE. Where it
cannot, the report says so and the figures are still measured.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

RATE = 100  # samples per second

# The first part of a frame's file names the package; these are the standard library's.
STDLIB = {
    "asyncio",
    "collections",
    "concurrent",
    "email",
    "encodings",
    "http",
    "importlib",
    "json",
    "logging",
    "re",
    "urllib",
}


@dataclass
class Profile:
    process: str
    samples: int = 0
    functions: Counter = field(default_factory=Counter)
    packages: Counter = field(default_factory=Counter)
    error: str = ""

    def top(self, counter: Counter, n: int) -> list[tuple[str, float]]:
        return [(name, 100 * c / self.samples) for name, c in counter.most_common(n)]


def _package(filename: str) -> str:
    head = filename.split("/", 1)[0]
    if head.startswith("<") or head in STDLIB or "/" not in filename:
        return "Python (stdlib)" if not head.startswith("<") else "Python (frozen)"
    return head


def parse(process: str, raw: str) -> Profile:
    """py-spy's raw output: one stack per line, root first, frames ``func (file:line)``
    joined by ``;``, then the number of samples."""
    profile = Profile(process)
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1].strip()
        func, _, where = leaf.rpartition(" (")
        filename = where.rstrip(")").rsplit(":", 1)[0]
        n = int(count)
        profile.samples += n
        profile.functions[f"{func} ({filename})"] += n
        profile.packages[_package(filename)] += n
    return profile


def py_spy() -> str | None:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else shutil.which("py-spy")


def record(pids: dict[str, int], seconds: float, load: Callable[[], object]) -> dict[str, Profile]:
    """Sample each of ``pids`` for ``seconds`` while ``load()`` runs (it should last as long)."""
    exe = py_spy()
    if exe is None:
        return {name: Profile(name, error="py-spy is not installed") for name in pids}
    with tempfile.TemporaryDirectory() as tmp:
        procs = {}
        for name, pid in pids.items():
            out = Path(tmp) / f"{name}.raw"
            argv = [exe, "record", "--pid", str(pid), "--duration", f"{seconds:g}"]
            argv += ["--rate", str(RATE), "--format", "raw", "--nonblocking", "--output", str(out)]
            procs[name] = (
                subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
                out,
            )
        load()
        profiles = {}
        for name, (proc, out) in procs.items():
            text, _ = proc.communicate(timeout=seconds + 60)
            if proc.returncode != 0 or not out.exists():
                reason = (
                    text.strip().splitlines()[-1] if text.strip() else f"exit {proc.returncode}"
                )
                profiles[name] = Profile(name, error=f"py-spy failed: {reason[:200]}")
            else:
                profiles[name] = parse(name, out.read_text())
    return profiles


def markdown(profiles: dict[str, Profile], functions: int = 6, packages: int = 5) -> str:
    lines = []
    for profile in profiles.values():
        if profile.error:
            lines.append(f"- **{profile.process}**: no profile ({profile.error})")
            continue
        if not profile.samples:
            lines.append(f"- **{profile.process}**: no samples (the process was idle)")
            continue
        by_package = ", ".join(f"{p} {v:.0f}%" for p, v in profile.top(profile.packages, packages))
        lines.append(
            f"- **{profile.process}** ({profile.samples} samples at {RATE}/s while busy), own time"
            f" by package: {by_package}; by function:"
        )
        for name, value in profile.top(profile.functions, functions):
            lines.append(f"  - {value:.1f}% `{name}`")
    return "\n".join(lines)
