"""Run a service's command line in-process, as ``python -m <service> ...`` would."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str  # messages, and the log lines (JSON)


def command_environment(monkeypatch: pytest.MonkeyPatch, cwd: Path, **values: object) -> None:
    """The environment a command reads its settings from (``database_url=...`` sets
    ``DATABASE_URL``), in a working directory without a developer's ``.env``."""
    monkeypatch.chdir(cwd)
    for name, value in values.items():
        monkeypatch.setenv(name.upper(), str(value))


async def run_cli(main: Callable[[list[str]], None], *argv: str) -> CliResult:
    """``main(argv)`` in a thread (it runs an event loop of its own)."""
    return await asyncio.to_thread(_run, main, argv)


def _run(main: Callable[[list[str]], None], argv: Sequence[str]) -> CliResult:
    """``main(argv)`` with its output captured and its exit code. Logging goes to ``err``
    through a configuration of our own, so ``main`` leaves the process's alone (it would
    cache loggers on a stream that is gone after this call)."""
    out, err = io.StringIO(), io.StringIO()
    before = structlog.get_config() if structlog.is_configured() else None
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(err),
        cache_logger_on_first_use=False,
    )
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        if before is None:
            structlog.reset_defaults()
        else:
            structlog.configure(**before)
    return CliResult(code, out.getvalue(), err.getvalue())
