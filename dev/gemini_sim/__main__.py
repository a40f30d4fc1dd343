"""`python -m dev.gemini_sim [--host H] [--port P] [--token-delay-ms MS] [--reply-tokens N]`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import uvicorn

import dev.gemini_sim
from dev.gemini_sim.app import SimConfig, create_app

log = logging.getLogger("dev.gemini_sim")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = SimConfig()
    parser = argparse.ArgumentParser(
        prog="python -m dev.gemini_sim",
        epilog=dev.gemini_sim.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8765")))
    parser.add_argument(
        "--token-delay-ms",
        type=float,
        default=float(os.environ.get("GEMINI_SIM_TOKEN_DELAY_MS", defaults.token_delay_ms)),
        help="wait before each streamed chunk; a reply takes reply-tokens x this (0: none)",
    )
    parser.add_argument(
        "--reply-tokens",
        type=int,
        default=int(os.environ.get("GEMINI_SIM_REPLY_TOKENS", defaults.reply_tokens)),
        help="chunks per reply",
    )
    parser.add_argument(
        "--hang-seconds",
        type=float,
        default=defaults.hang_seconds,
        help="how long [sim:hang] and [sim:hang-mid] send nothing",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        token_delay_ms=args.token_delay_ms,
        reply_tokens=args.reply_tokens,
        hang_seconds=args.hang_seconds,
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        config = config_from(args)
    except ValueError as exc:
        sys.exit(f"gemini_sim: {exc}")
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s gemini-sim %(message)s",
    )
    log.info(
        "Gemini SIMULATOR (not a real model) on http://%s:%d: %d-token replies, %g ms/token",
        args.host,
        args.port,
        config.reply_tokens,
        config.token_delay_ms,
    )
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,  # the app logs one line per generation request itself
        timeout_graceful_shutdown=2,  # do not wait for [sim:hang] requests on Ctrl-C
    )


if __name__ == "__main__":
    main()
