"""The HTTP figures, taken with Debian's ``wrk`` as the reference service's were:
``wrk -t1 -c16 -d8s --latency`` (one C thread, 16 keep-alive connections, closed loop).

``make bench`` installs wrk from Debian when it is missing (as ``make test`` does chromium).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LUA = Path(__file__).parent / "lua"
CONNECTIONS, SECONDS = 16, 8


@dataclass
class WrkRun:
    label: str
    command: str
    rate: float = 0.0
    requests: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50, p75, p90, p99
    non_2xx: int = 0
    socket_errors: int = 0
    output: str = ""

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def require() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(
            "wrk is not installed: `make bench` installs it from Debian (apt-get, as root);"
            " elsewhere install your distribution's wrk package"
        )
    return path


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def parse(label: str, command: str, output: str) -> WrkRun:
    run = WrkRun(label, command, output=output)
    if m := re.search(r"Requests/sec:\s+([\d.]+)", output):
        run.rate = float(m.group(1))
    if m := re.search(r"(\d+) requests in", output):
        run.requests = int(m.group(1))
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", output, re.MULTILINE):
        run.latency_ms[f"p{pct}"] = _ms(value)
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        run.non_2xx = int(m.group(1))
    if m := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        run.socket_errors = sum(int(n) for n in m.groups())
    return run


def run(
    label: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    script: str | None = None,
    script_args: list[str] | None = None,
    seconds: float = SECONDS,
    connections: int = CONNECTIONS,
    until: Callable[[], bool] | None = None,
) -> WrkRun:
    """One wrk run; ``script`` names a file in bench/lua. The command recorded for the
    report is the one to type (with ``$TOKEN`` for a bearer token). ``until``, polled every
    0.1 s, ends the run early when it returns true."""
    argv = [require(), "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    shown = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
        shown += [
            "-H",
            f"'{name}: Bearer $TOKEN'" if name == "Authorization" else f"'{name}: {value}'",
        ]
    if script:
        argv += ["-s", str(LUA / script)]
        shown += ["-s", f"bench/lua/{script}"]
    argv.append(url)
    shown.append(re.sub(r"127\.0\.0\.1:\d+", "HOST", url))
    if script_args:
        argv += ["--", *script_args]
        shown += ["--", "FILE"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        if until is not None:
            deadline = time.monotonic() + seconds
            while proc.poll() is None and time.monotonic() < deadline and not until():
                time.sleep(0.1)
            # wrk prints its figures and exits on SIGINT; a Lua thread:stop() alone leaves
            # its main thread asleep for the rest of -d.
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.strip()[:300]}")
    return parse(label, " ".join(shown), out)
