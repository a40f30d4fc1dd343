"""deploy/k8s/infra/postgres/service-role.sql on a real Postgres (the one `make test`
provides): each service's role migrates its own schema with the real migration runner, and
can neither read another service's schema nor create anything in `public`."""

from __future__ import annotations

import importlib
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from deploy.tests.k8s import K8S, WITH_DATABASE
from shared.migrations import migrate

SCRIPT = K8S / "infra" / "postgres" / "service-role.sql"


def psql_statements(path: Path, conn: psycopg.Connection, variables: dict[str, str]) -> list[str]:
    """The statements of a psql script with its :"name" and :'name' variables filled in the
    way psql does, so that no psql binary is needed."""

    def fill(match: re.Match[str]) -> str:
        quote, name = match.groups()
        value = variables[name]
        quoted = sql.Identifier(value) if quote == '"' else sql.Literal(value)
        return quoted.as_string(conn)

    text = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("--"))
    text = re.sub(r":([\"'])(\w+)\1", fill, text)
    return [statement.strip() for statement in text.split(";") if statement.strip()]


def with_login(url: str, **params: str) -> str:
    return make_conninfo(**{**conninfo_to_dict(url), **params})


@pytest.fixture
def roles(server_database_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh database with a role and schema per service, made by the script: the
    database's URL and each service's role name (unique to this test)."""
    prefix = f"gb_{secrets.token_hex(4)}"
    database = f"{prefix}_roles"
    names = {service: f"{prefix}_{service.replace('-', '_')}" for service in sorted(WITH_DATABASE)}
    with psycopg.connect(server_database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    url = with_login(server_database_url, dbname=database)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for role in names.values():
                variables = {"DBNAME": database, "service": role, "password": role}
                for statement in psql_statements(SCRIPT, conn, variables):
                    conn.execute(statement.encode())
        yield url, names
    finally:
        with psycopg.connect(server_database_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
            for role in names.values():
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_each_service_role_migrates_its_own_schema_and_nothing_else(
    roles: tuple[str, dict[str, str]],
) -> None:
    url, names = roles
    for service, role in names.items():
        login = with_login(url, user=role, password=role)
        # Exactly what the service's `migrate` command applies.
        folders = importlib.import_module(f"{service.replace('-', '_')}.__main__").MIGRATIONS
        assert migrate(login, role, folders), f"{service}: nothing applied"
        assert migrate(login, role, folders) == []  # a second start finds it up to date

    first, *others = names.values()
    with psycopg.connect(with_login(url, user=first, password=first), autocommit=True) as conn:
        for other in others:
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(sql.SQL("SELECT 1 FROM {}.outbox").format(sql.Identifier(other)))
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE public.stray (id int)")
