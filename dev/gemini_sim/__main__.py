"""`python -m dev.gemini_sim [--host H] [--port P] [--token-delay-ms MS] [--reply-tokens N]`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from starlette.types import ASGIApp

import dev.gemini_sim
from dev import simrun
from dev.gemini_sim.app import SimConfig, create_app


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = SimConfig()
    parser = simrun.parser("python -m dev.gemini_sim", dev.gemini_sim.__doc__, 8765)
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
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        token_delay_ms=args.token_delay_ms,
        reply_tokens=args.reply_tokens,
        hang_seconds=args.hang_seconds,
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)

    def build() -> tuple[ASGIApp, str]:
        config = config_from(args)
        banner = (
            f"Gemini SIMULATOR (not a real model) on http://{args.host}:{args.port}:"
            f" {config.reply_tokens}-token replies, {config.token_delay_ms:g} ms/token"
        )
        return create_app(config), banner

    simrun.serve("gemini-sim", args, build)


if __name__ == "__main__":
    main()
