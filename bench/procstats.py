"""RSS and CPU of the stack's processes (psutil), sampled in a thread while a step runs."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Mapping

import psutil

MB = 1024 * 1024


def _tree(pid: int) -> list[psutil.Process]:
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def rss(pid: int) -> int:
    """Resident memory of ``pid`` and its children, in bytes."""
    total = 0
    for proc in _tree(pid):
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for proc in _tree(pid):
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def rss_now(pids: Mapping[str, int]) -> dict[str, int]:
    return {name: rss(pid) for name, pid in pids.items()}


DB_SERVERS = ("postgres", "redis-server", "valkey-server")


def _all_cpu() -> dict[int, tuple[str, float]]:
    out = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is not None:
            out[proc.pid] = (proc.info["name"] or "", times.user + times.system)
    return out


def _ours() -> set[int]:
    me = psutil.Process(os.getpid())
    return {me.pid, *(child.pid for child in me.children(recursive=True))}


class Watch:
    """``with Watch(pids) as w: ...`` → ``w.peak_rss[name]`` (bytes, sampled every
    ``interval`` s) and ``w.cpu_percent[name]`` (CPU time over wall time; 100 = one core)."""

    def __init__(self, pids: Mapping[str, int], interval: float = 0.2) -> None:
        self.pids = dict(pids)
        self.interval = interval
        self.peak_rss: dict[str, int] = dict.fromkeys(self.pids, 0)
        self.cpu_percent: dict[str, float] = {}
        self.machine_cpu_percent = 0.0
        # CPU (100 = one core) of: this run (the driver and the stack), the Postgres and
        # Redis servers (shared with anything else on the machine), every other process.
        self.groups: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for name, pid in self.pids.items():
            self.peak_rss[name] = max(self.peak_rss[name], rss(pid))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Watch:
        self._cpu0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._all0 = _all_cpu()
        self._t0 = time.perf_counter()
        psutil.cpu_percent(interval=None)
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        wall = time.perf_counter() - self._t0
        self.machine_cpu_percent = psutil.cpu_percent(interval=None)
        ours, groups = _ours(), {"this run": 0.0, "Postgres + Redis": 0.0, "other": 0.0}
        for pid, (name, seconds) in _all_cpu().items():
            used = seconds - self._all0.get(pid, (name, 0.0))[1]
            group = "this run" if pid in ours else "other"
            if name.startswith(DB_SERVERS):
                group = "Postgres + Redis"
            groups[group] += used
        self.groups = {k: 100 * v / wall for k, v in groups.items()}
        self.cpu_percent = {
            name: 100 * (cpu_seconds(pid) - self._cpu0[name]) / wall
            for name, pid in self.pids.items()
        }


def process_round_trip_us(rounds: int = 20_000) -> float:
    """Microseconds for one byte to go to a child process through a pipe and back: what
    a hop between two processes (gateway to chat, chat to Postgres, ...) costs this
    machine's kernel and hypervisor, apart from any work. The best of three runs."""
    best = float("inf")
    for _ in range(3):
        to_child, from_parent = os.pipe()
        to_parent, from_child = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: answer every byte, then leave without cleanup
            for _ in range(rounds):
                os.read(to_child, 1)
                os.write(from_child, b"x")
            os._exit(0)
        started = time.perf_counter()
        for _ in range(rounds):
            os.write(from_parent, b"x")
            os.read(to_parent, 1)
        best = min(best, (time.perf_counter() - started) / rounds * 1e6)
        os.waitpid(pid, 0)
        for fd in (to_child, from_parent, to_parent, from_child):
            os.close(fd)
    return best


def import_rss(modules: list[str]) -> dict[str, int]:
    """RSS of a fresh ``python -c "import <module>"`` for each module ("" = bare Python):
    what a process costs before it has done anything."""
    import subprocess
    import sys

    out = {}
    for module in modules:
        code = (f"import {module}\n" if module else "") + (
            "import psutil; print(psutil.Process().memory_info().rss)"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )
        if done.returncode == 0:
            out[module or "Python alone"] = int(done.stdout.strip().splitlines()[-1])
    return out


def wait_for_quiet(max_wait: float, threshold: float = 25.0) -> float:
    """Wait (at most ``max_wait`` s) until the machine's CPU use, sampled over 2 s, is under
    ``threshold`` % of one core; returns the last sample (100 = one core)."""
    deadline = time.monotonic() + max_wait
    while True:
        busy = psutil.cpu_percent(interval=2.0) * (os.cpu_count() or 1)
        if busy < threshold or time.monotonic() > deadline:
            return busy
        print(f"the machine is busy ({busy:.0f}% CPU, 100 = one core); waiting...", flush=True)


# Run in a fresh process: imports the module named by argv[1] with every module's execution
# wrapped, and prints (JSON) the resident memory each top-level package added by its own
# modules' code, not counting what they imported (that is charged to its own package).
_PROFILE_IMPORTS = """
import importlib, importlib.abc, json, sys

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

own, nested = {}, []

class Measured:
    def __init__(self, loader, name):
        self.loader, self.name = loader, name
    def __getattr__(self, attr):
        return getattr(self.loader, attr)
    def create_module(self, spec):
        return self.loader.create_module(spec)
    def exec_module(self, module):
        nested.append(0)
        before = rss()
        try:
            self.loader.exec_module(module)
        finally:
            grew, inner = rss() - before, nested.pop()
            top = self.name.partition(".")[0]
            own[top] = own.get(top, 0) + grew - inner
            if nested:
                nested[-1] += grew

class Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if hasattr(spec.loader, "exec_module"):
                    spec.loader = Measured(spec.loader, name)
                return spec
        return None

sys.meta_path.insert(0, Finder())
importlib.import_module(sys.argv[1])
print(json.dumps(own))
"""


def import_profile(module: str) -> dict[str, int]:
    """What each top-level package adds to a fresh process's RSS while ``module`` is
    imported (bytes; a package's own modules, not what they import), largest first."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _PROFILE_IMPORTS, module],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        return {}
    own = json.loads(done.stdout.strip().splitlines()[-1])
    return dict(sorted(own.items(), key=lambda item: -item[1]))


def _required(distribution: str) -> set[str]:
    """The canonical names of ``distribution`` and everything it requires, extras asked
    for included (``google-genai[aiohttp]``): what an install of it alone holds."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(distribution), frozenset[str]())]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or any(
                req.marker.evaluate({"extra": extra}) for extra in extras or {""}
            ):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return {name for name, _ in seen}


def not_in_its_install(packages: Iterable[str], distribution: str) -> list[str]:
    """Those of ``packages`` (top-level modules) that come from a distribution outside
    ``distribution``'s requirements: imported here only because this venv also holds the
    tests' tools; an install of that service alone, as its image is built, does not have
    them."""
    from importlib import metadata

    from packaging.utils import canonicalize_name

    required = _required(distribution)
    owners = metadata.packages_distributions()
    return [
        package
        for package in packages
        if package in owners
        and not any(canonicalize_name(dist) in required for dist in owners[package])
    ]


def absent_packages(distribution: str) -> list[str]:
    """Every top-level package of this venv that an install of ``distribution`` alone
    would not have (bench/installed_only/sitecustomize.py hides them)."""
    from importlib import metadata

    return sorted(not_in_its_install(metadata.packages_distributions(), distribution))
