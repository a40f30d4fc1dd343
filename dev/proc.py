"""Child processes for the local stack: start them so they die with us, stop them for sure."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_or_free(preferred: int) -> int:
    """``preferred`` if it can be bound on 127.0.0.1, else any free port."""
    with socket.socket() as sock:
        # As the servers do: old connections in TIME_WAIT do not make the port busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A preexec_fn asking Linux to send ``sig`` to the child when its parent dies.

    Runs in the child after any user switch (a switch would clear the setting). Note that
    Linux sends it when the *thread* that started the child exits: start children from
    the main thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


def spawn(
    argv: list[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    output: IO[bytes] | None = None,
    user: tuple[int, int] | None = None,
    death_signal: signal.Signals = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group (so a terminal Ctrl-C reaches only us and we
    decide the shutdown order), with stdout and stderr to ``output`` or inherited, as
    ``user`` = (uid, gid) if given, and dying with ``death_signal`` if we are killed."""
    return subprocess.Popen(
        argv,
        env=None if env is None else dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
        process_group=0,
        preexec_fn=_die_with_parent(death_signal),
        user=user[0] if user else None,
        group=user[1] if user else None,
        extra_groups=[] if user else None,
    )


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


Stoppable = tuple[subprocess.Popen[bytes], signal.Signals]


def stop_all(procs: Iterable[Stoppable], timeout: float) -> None:
    """Send each process group its signal, wait up to ``timeout`` seconds for all of them,
    then SIGKILL the groups still running. Idempotent."""
    procs = [(p, sig) for p, sig in procs if p.poll() is None]
    for proc, sig in procs:
        _signal_group(proc, sig)
    deadline = time.monotonic() + timeout
    for proc, _ in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=5)


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
