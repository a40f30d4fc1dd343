"""The command line every service shares: ``python -m <service> serve | migrate | republish``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import structlog
import uvicorn
from pydantic import ValidationError

from shared.db import schema_conninfo
from shared.logging import configure_logging
from shared.migrations import MigrationError, migrate
from shared.outbox import republish_since
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)


def _load_settings(settings_cls: type[ServiceSettings]) -> ServiceSettings:
    try:
        return settings_cls()
    except ValidationError as exc:
        # A readable message, not a traceback, for a misconfigured environment.
        lines = [
            f"  {'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        ]
        print("Invalid configuration:\n" + "\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None


def main(
    service: str,
    *,
    settings_cls: type[ServiceSettings],
    create_app: Callable[[Any], Any],
    schema: str | None = None,
    migrations_dir: Path | Sequence[Path] | None = None,
    has_outbox: bool = False,
    commands: Mapping[str, Callable[[Any], Awaitable[int]]] | None = None,
    argv: list[str] | None = None,
) -> None:
    """``commands`` adds a service's own commands: each an async function of the settings
    returning the exit code."""
    extra = dict(commands or {})
    parser = argparse.ArgumentParser(prog=f"python -m {service}")
    choices = ["serve"] + (["migrate"] if migrations_dir else [])
    choices += (["republish"] if has_outbox else []) + list(extra)
    parser.add_argument("command", choices=choices)
    parser.add_argument(
        "--since",
        type=datetime.fromisoformat,
        help="republish: send again every event created at or after this ISO-8601 time",
    )
    args = parser.parse_args(argv)

    settings = _load_settings(settings_cls)
    configure_logging(service, level=settings.log_level, json=settings.app_env != "development")

    if args.command == "migrate":
        assert schema and migrations_dir
        try:
            migrate(settings.database_url, schema, migrations_dir)
        except (MigrationError, psycopg.OperationalError) as exc:
            log.error("migrations.failed", schema=schema, error=str(exc).strip())
            raise SystemExit(1) from None
        return

    if args.command in extra:
        raise SystemExit(asyncio.run(extra[args.command](settings)))

    if args.command == "republish":
        if args.since is None:
            parser.error("republish needs --since (e.g. --since 2026-11-28T10:00:00+00:00)")
        count = asyncio.run(_republish(settings.database_url, schema or service, args.since))
        log.info(
            "outbox.republish_queued", schema=schema, since=args.since.isoformat(), count=count
        )
        return

    log.info("service.starting", host=settings.host, port=settings.port, env=settings.app_env)
    uvicorn.run(create_app(settings), **server_options(settings))


def server_options(settings: ServiceSettings) -> dict[str, Any]:
    """uvicorn's options for a service.

    The client address (``request.client``) is the peer's, unless the peer is listed in
    ``FORWARDED_ALLOW_IPS``: then it is the right-most X-Forwarded-For address not listed
    (uvicorn's ProxyHeadersMiddleware; CIDRs allowed). Always passed explicitly, so uvicorn's
    own default (trust loopback) never applies.
    """
    return {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }


async def _republish(database_url: str, schema: str, since: datetime) -> int:
    conninfo = schema_conninfo(database_url, schema)
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        count = await republish_since(conn, since)
        await conn.commit()
    return count
