"""The command line every service shares:
``python -m <service> serve | migrate [--status] | republish --since T | dlq ...``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from pydantic import ValidationError
from redis.exceptions import RedisError

from shared import dlq, tracing
from shared.http import SERVER_KEEP_ALIVE_SECONDS
from shared.logging import configure_logging
from shared.redis import open_redis
from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)

# The commands that touch Postgres (migrate, republish) import its driver when they run:
# the ai-worker has no database and does not load it (about 9 MB) to serve.


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
    consumes: Sequence[str] = (),
    commands: Mapping[str, Callable[[Any], Coroutine[Any, Any, int]]] | None = None,
    argv: list[str] | None = None,
) -> None:
    """``consumes``: the streams the service reads as consumer group ``service``, which gives
    it the ``dlq`` commands. ``commands`` adds a service's own commands: each an async
    function of the settings returning the exit code.

    Exit codes: 0 done (also when there was nothing to do), 1 it failed (a dependency down,
    a dead letter not found, a migration changed), 2 a usage or configuration error."""
    extra = dict(commands or {})
    parser = _parser(service, bool(migrations_dir), has_outbox, consumes, extra)
    args = parser.parse_args(argv)

    settings = _load_settings(settings_cls)
    if not structlog.is_configured():  # else the caller chose already (shared.testing.cli)
        json_logs = settings.app_env != "development"
        configure_logging(service, level=settings.log_level, json=json_logs)

    if args.command == "migrate":
        assert schema and migrations_dir
        if args.status:
            raise SystemExit(_migration_status(settings.database_url, schema, migrations_dir))
        if code := _migrate(settings.database_url, schema, migrations_dir):
            raise SystemExit(code)
        return

    if args.command == "dlq":
        streams = [args.stream] if args.stream else list(consumes)
        raise SystemExit(asyncio.run(_dlq(settings.redis_url, service, streams, args)))

    if args.command in extra:
        raise SystemExit(asyncio.run(extra[args.command](settings)))

    if args.command == "republish":
        count = asyncio.run(_republish(settings.database_url, schema or service, args.since))
        log.info(
            "outbox.republish_queued", schema=schema, since=args.since.isoformat(), count=count
        )
        return

    log.info("service.starting", host=settings.host, port=settings.port, env=settings.app_env)
    tracing.configure_tracing(service)
    uvicorn.run(create_app(settings), **server_options(settings))


def _entry_id(value: str) -> str:
    if not dlq.ENTRY_ID.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a stream entry id (1764316800000-0)")
    return value


def _parser(
    service: str,
    has_migrations: bool,
    has_outbox: bool,
    consumes: Sequence[str],
    extra: Mapping[str, Callable[..., Any]],
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {service}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    commands.add_parser("serve", help="serve HTTP and run the background loops")
    if has_migrations:
        migrate_cmd = commands.add_parser("migrate", help="apply the pending migrations")
        migrate_cmd.add_argument(
            "--status", action="store_true", help="list applied and pending ones; apply nothing"
        )
    if has_outbox:
        republish = commands.add_parser("republish", help="send the event log again")
        republish.add_argument(
            "--since",
            type=datetime.fromisoformat,
            required=True,
            help="every event created at or after this ISO-8601 time"
            " (e.g. 2026-11-28T10:00:00+00:00)",
        )
    for name, command in extra.items():
        commands.add_parser(name, help=(command.__doc__ or "").strip().split("\n")[0])
    if consumes:
        dlq_cmd = commands.add_parser(
            "dlq", help=f"dead letters of consumer group {service}: list, show, replay, purge"
        )
        actions = dlq_cmd.add_subparsers(dest="action", required=True, metavar="action")
        stream = argparse.ArgumentParser(add_help=False)
        stream.add_argument("--stream", choices=list(consumes), help="only this stream's")
        actions.add_parser("list", parents=[stream], help="one line per dead letter")
        show = actions.add_parser("show", parents=[stream], help="one dead letter as JSON")
        show.add_argument("id", type=_entry_id, help="its id in <stream>.dlq")
        for name, help in (
            ("replay", "put back on its stream, for this group only (once)"),
            ("purge", "delete"),
        ):
            action = actions.add_parser(name, parents=[stream], help=help)
            which = action.add_mutually_exclusive_group(required=True)
            which.add_argument("id", nargs="?", type=_entry_id, help="its id in <stream>.dlq")
            which.add_argument("--all", action="store_true", help="every one of this group")
    return parser


async def _dlq(redis_url: str, group: str, streams: list[str], args: argparse.Namespace) -> int:
    redis = open_redis(redis_url)
    try:
        if args.action == "list":
            return await dlq.list_command(redis, group, streams)
        if args.action == "show":
            return await dlq.show_command(redis, group, streams, args.id)
        if args.action == "replay":
            return await dlq.replay_command(redis, group, streams, args.id)
        return await dlq.purge_command(redis, group, streams, args.id)
    except (RedisError, OSError) as exc:
        print(f"Redis is not available: {exc}", file=sys.stderr)
        return 1
    finally:
        await redis.aclose()


def _migrate(database_url: str, schema: str, directory: Path | Sequence[Path]) -> int:
    import psycopg

    from shared.migrations import MigrationError, migrate

    try:
        migrate(database_url, schema, directory)
    except (MigrationError, psycopg.OperationalError) as exc:
        log.error("migrations.failed", schema=schema, error=str(exc).strip())
        return 1
    return 0


def _migration_status(database_url: str, schema: str, directory: Path | Sequence[Path]) -> int:
    """``migrate --status``: 0 unless a migration changed or went missing after it was
    applied (``migrate`` would refuse to run) or the database cannot be read."""
    import psycopg

    from shared.migrations import MIGRATION_STATES, MigrationError, migration_status

    try:
        states = migration_status(database_url, schema, directory)
    except (MigrationError, psycopg.OperationalError) as exc:
        print(f"{schema}: cannot read the migration status: {str(exc).strip()}", file=sys.stderr)
        return 1
    for state in states:
        when = state.applied_at.isoformat(timespec="seconds") if state.applied_at else ""
        print(f"{state.status:<8} {when:<25} {state.name}")
    counts = Counter(state.status for state in states)
    print(f"{schema}: " + ", ".join(f"{counts[s]} {s}" for s in MIGRATION_STATES if counts[s]))
    return 1 if counts["changed"] or counts["missing"] else 0


def server_options(settings: ServiceSettings) -> dict[str, Any]:
    """uvicorn's options for a service.

    The client address (``request.client``) is the peer's, unless the peer is listed in
    ``FORWARDED_ALLOW_IPS``: then it is the right-most X-Forwarded-For address not listed
    (uvicorn's ProxyHeadersMiddleware; CIDRs allowed). Always passed explicitly, so uvicorn's
    own default (trust loopback) never applies.

    No service speaks WebSocket (replies stream over SSE), so none loads a WebSocket
    protocol (``ws="none"``; uvicorn's "auto" loads one, ~0.6 MB a process): an upgrade
    request is answered as the plain HTTP request it also is.
    """
    return {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "server_header": False,
        "ws": "none",
        "timeout_graceful_shutdown": 10,
        "timeout_keep_alive": SERVER_KEEP_ALIVE_SECONDS,
    }


async def _republish(database_url: str, schema: str, since: datetime) -> int:
    import psycopg

    from shared.db import schema_conninfo
    from shared.outbox import republish_since

    conninfo = schema_conninfo(database_url, schema)
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        count = await republish_since(conn, since)
        await conn.commit()
    return count
