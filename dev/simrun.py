"""The command line both simulators share (`python -m dev.gemini_sim`, `python -m
dev.stripe_sim`): host, port and log level, a banner that says plainly it is a simulator,
and uvicorn without its access log (each simulator logs its own line per request)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp


def parser(prog: str, doc: str | None, default_port: int) -> argparse.ArgumentParser:
    """The shared options; a simulator adds its own."""
    parser = argparse.ArgumentParser(
        prog=prog, epilog=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or default_port))
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    return parser


def serve(name: str, args: argparse.Namespace, build: Callable[[], tuple[ASGIApp, str]]) -> None:
    """``build()`` makes the app and its banner from ``args``; a ValueError (a bad option
    value) ends the process with its message."""
    try:
        app, banner = build()
    except ValueError as exc:
        sys.exit(f"{name}: {exc}")
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format=f"%(asctime)s {name} %(message)s"
    )
    logging.getLogger(f"dev.{name.replace('-', '_')}").info("%s", banner)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=2,  # do not wait for requests held on purpose on Ctrl-C
    )
