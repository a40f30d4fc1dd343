"""`python -m dev.stripe_sim [--host H] [--port P] [--webhook-url URL] [--webhook-secret S] ...`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import uvicorn

import dev.stripe_sim
from dev.stripe_sim.app import DEFAULT_PORT, DEFAULT_SECRET, SimConfig, create_app
from dev.stripe_sim.store import PriceSpec

log = logging.getLogger("dev.stripe_sim")


def _delays(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(d) for d in text.split(",") if d.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of seconds: {text!r}") from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = SimConfig()
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m dev.stripe_sim",
        epilog=dev.stripe_sim.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(env("PORT") or DEFAULT_PORT))
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
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
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
    try:
        config = config_from(args)
    except ValueError as exc:
        sys.exit(f"stripe_sim: {exc}")
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s stripe-sim %(message)s",
    )
    log.info(
        "Stripe SIMULATOR (no real payments) on http://%s:%d; prices %s; webhooks to %s",
        args.host,
        args.port,
        ", ".join(p.id for p in config.prices),
        config.webhook_url or "nowhere (recorded only)",
    )
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,  # the app logs one line per API request itself
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()
