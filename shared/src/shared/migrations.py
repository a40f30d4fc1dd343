"""The SQL migration runner every service uses (and the tests run, unchanged).

A service's migrations are plain SQL files named ``YYYYMMDD_HHMM_slug.sql`` in its
``migrations/`` folder. They are forward-only: a file that was applied must never change,
and the runner refuses to go on if one did (its checksum is recorded).

Each run takes a Postgres advisory lock (so two replicas starting at once do not race),
creates the service's schema if needed, and applies every pending file in name order, each
in its own transaction with ``search_path`` set to the schema and a ``lock_timeout``.
"""

from __future__ import annotations

import hashlib
import os
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
import structlog
from psycopg import sql

log = structlog.get_logger(__name__)

FILENAME = re.compile(r"^\d{8}_\d{4}_[a-z0-9_]+\.sql$")

# The outbox and inbox tables (shared/sql/), for services that produce or consume events.
MESSAGING = Path(__file__).resolve().parent / "sql"
# The tier projection (shared/sql/tiers/, its SQL in shared/tiers.py), for services that
# derive a user's tier from SubscriptionChanged.
TIER_PROJECTION = MESSAGING / "tiers"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def service_migrations(source_tree_default: Path) -> Path:
    """A service's migrations folder: ``MIGRATIONS_DIR`` when set (a container image that
    installed the package elsewhere copies the folder and points here), else the folder in
    the source tree."""
    return Path(os.environ.get("MIGRATIONS_DIR") or source_tree_default)


def discover(directories: Sequence[Path]) -> list[Migration]:
    """Every migration in ``directories``, in name (that is, date) order."""
    found: dict[str, Path] = {}
    for directory in directories:
        for path in directory.glob("*.sql"):
            if not FILENAME.match(path.name):
                raise MigrationError(
                    f"{path.name}: migration files are named YYYYMMDD_HHMM_slug.sql"
                )
            if path.name in found:
                raise MigrationError(
                    f"{path.name} exists in {found[path.name].parent} and {directory}"
                )
            found[path.name] = path
    return [Migration(name, found[name].read_text(encoding="utf-8")) for name in sorted(found)]


def _directories(directory: Path | Sequence[Path]) -> list[Path]:
    return [directory] if isinstance(directory, Path) else list(directory)


def _lock_key(schema: str) -> int:
    # A stable 32-bit key per schema for pg_advisory_lock.
    return zlib.crc32(f"migrations:{schema}".encode())


def migrate(
    database_url: str,
    schema: str,
    directory: Path | Sequence[Path],
    *,
    lock_timeout: str = "10s",
) -> list[str]:
    """Apply pending migrations from one folder or several; return the names applied now."""
    migrations = discover(_directories(directory))
    applied_now: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_lock_key(schema),))
        try:
            exists = conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)
            ).fetchone()
            if not exists:  # CREATE SCHEMA needs a database privilege a service role may lack
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                    " name text PRIMARY KEY,"
                    " checksum text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(sql.Identifier(schema))
            )
            rows = conn.execute(
                sql.SQL("SELECT name, checksum FROM {}.schema_migrations").format(
                    sql.Identifier(schema)
                )
            ).fetchall()
            done: dict[str, str] = dict(rows)
            known = {m.name for m in migrations}
            for name in done:
                if name not in known:
                    raise MigrationError(
                        f"{schema}: applied migration {name} is missing from {directory}"
                    )
            for migration in migrations:
                if migration.name in done:
                    if done[migration.name] != migration.checksum:
                        raise MigrationError(
                            f"{schema}: {migration.name} changed after it was applied; "
                            "migrations are forward-only, add a new file instead"
                        )
                    continue
                with conn.transaction():
                    conn.execute(
                        sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(lock_timeout))
                    )
                    conn.execute(
                        sql.SQL("SET LOCAL search_path = {}, public").format(sql.Identifier(schema))
                    )
                    conn.execute(migration.sql)
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {}.schema_migrations (name, checksum) VALUES (%s, %s)"
                        ).format(sql.Identifier(schema)),
                        (migration.name, migration.checksum),
                    )
                applied_now.append(migration.name)
                log.info("migrations.applied", schema=schema, migration=migration.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_lock_key(schema),))
    if not applied_now:
        log.info("migrations.up_to_date", schema=schema, count=len(migrations))
    return applied_now


# What ``migration_status`` says of each migration. ``changed`` (applied, and the file
# differs since) and ``missing`` (applied, and the file is gone) make ``migrate`` refuse.
MIGRATION_STATES = ("applied", "pending", "changed", "missing")


@dataclass(frozen=True)
class MigrationState:
    name: str
    status: str  # one of MIGRATION_STATES
    applied_at: datetime | None = None


def migration_status(
    database_url: str, schema: str, directory: Path | Sequence[Path]
) -> list[MigrationState]:
    """Every migration, in name order, with its state. Reads only (in a read-only
    transaction): a schema never migrated has every migration pending."""
    migrations = {m.name: m for m in discover(_directories(directory))}
    with psycopg.connect(database_url) as conn:
        conn.read_only = True
        migrated = conn.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'schema_migrations'",
            (schema,),
        ).fetchone()
        rows = (
            conn.execute(
                sql.SQL("SELECT name, checksum, applied_at FROM {}.schema_migrations").format(
                    sql.Identifier(schema)
                )
            ).fetchall()
            if migrated
            else []
        )
    applied = {name: (checksum, applied_at) for name, checksum, applied_at in rows}
    states = []
    for name in sorted(migrations.keys() | applied.keys()):
        if name not in applied:
            states.append(MigrationState(name, "pending"))
            continue
        checksum, applied_at = applied[name]
        if name not in migrations:
            status = "missing"
        elif migrations[name].checksum != checksum:
            status = "changed"
        else:
            status = "applied"
        states.append(MigrationState(name, status, applied_at))
    return states
