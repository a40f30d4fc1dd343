"""`python -m dev.stripe_sim [--host H] [--port P] [--webhook-url URL] [--webhook-secret S] ...`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from starlette.types import ASGIApp

import dev.stripe_sim
from dev import simrun
from dev.stripe_sim.app import DEFAULT_PORT, DEFAULT_SECRET, SimConfig, create_app
from dev.stripe_sim.store import PriceSpec


def _delays(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(d) for d in text.split(",") if d.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of seconds: {text!r}") from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = SimConfig()
    env = os.environ.get
    parser = simrun.parser("python -m dev.stripe_sim", dev.stripe_sim.__doc__, DEFAULT_PORT)
    parser.add_argument(
        "--webhook-url",
        default=env("STRIPE_SIM_WEBHOOK_URL") or None,
        help="where events are POSTed (env STRIPE_SIM_WEBHOOK_URL); none: recorded only",
    )
    parser.add_argument(
        "--webhook-secret",
        default=env("STRIPE_WEBHOOK_SECRET") or DEFAULT_SECRET,
        help=f"signs webhooks (env STRIPE_WEBHOOK_SECRET; default {DEFAULT_SECRET})",
    )
    parser.add_argument(
        "--public-url",
        default=env("STRIPE_SIM_PUBLIC_URL") or None,
        help="base of the checkout/portal URLs handed out (env STRIPE_SIM_PUBLIC_URL; "
        "default http://127.0.0.1:<port>)",
    )
    parser.add_argument(
        "--price",
        action="append",
        dest="prices",
        metavar="ID[:AMOUNT[:CURRENCY[:INTERVAL]]]",
        help="a recurring price the simulator knows; repeatable (env STRIPE_SIM_PRICES, "
        "comma-separated; default price_pro_monthly:1000:usd:month)",
    )
    parser.add_argument(
        "--retry-delays",
        type=_delays,
        default=_delays(env("STRIPE_SIM_RETRY_DELAYS") or "0.5,1,2"),
        help="seconds before each retry of a failed delivery (default 0.5,1,2; '' for none)",
    )
    parser.add_argument(
        "--delivery-timeout", type=float, default=defaults.delivery_timeout, help="seconds"
    )
    parser.add_argument(
        "--pay-wait",
        type=float,
        default=defaults.pay_wait_seconds,
        help="how long Pay waits for its webhooks before redirecting (0: not at all)",
    )
    parser.add_argument("--period-days", type=int, default=defaults.period_days)
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> SimConfig:
    specs = args.prices or [p for p in (os.environ.get("STRIPE_SIM_PRICES") or "").split(",")]
    specs = [s for s in specs if s.strip()] or ["price_pro_monthly"]
    return SimConfig(
        prices=tuple(PriceSpec.parse(s) for s in specs),
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        public_url=args.public_url or f"http://127.0.0.1:{args.port}",
        retry_delays=args.retry_delays,
        delivery_timeout=args.delivery_timeout,
        pay_wait_seconds=args.pay_wait,
        period_days=args.period_days,
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)

    def build() -> tuple[ASGIApp, str]:
        config = config_from(args)
        banner = (
            f"Stripe SIMULATOR (no real payments) on http://{args.host}:{args.port};"
            f" prices {', '.join(p.id for p in config.prices)};"
            f" webhooks to {config.webhook_url or 'nowhere (recorded only)'}"
        )
        return create_app(config), banner

    simrun.serve("stripe-sim", args, build)


if __name__ == "__main__":
    main()
