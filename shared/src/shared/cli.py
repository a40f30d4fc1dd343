"""The command line every service shares: ``python -m <service> serve | migrate``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from pydantic import ValidationError

from shared.logging import configure_logging
from shared.migrations import MigrationError, migrate
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
    migrations_dir: Path | None = None,
    argv: list[str] | None = None,
) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {service}")
    commands = ["serve"] + (["migrate"] if migrations_dir else [])
    parser.add_argument("command", choices=commands)
    args = parser.parse_args(argv)

    settings = _load_settings(settings_cls)
    configure_logging(service, level=settings.log_level, json=settings.app_env != "development")

    if args.command == "migrate":
        assert schema and migrations_dir
        try:
            migrate(settings.database_url, schema, migrations_dir)
        except MigrationError as exc:
            log.error("migrations.failed", schema=schema, error=str(exc))
            raise SystemExit(1) from None
        return

    log.info("service.starting", host=settings.host, port=settings.port, env=settings.app_env)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
