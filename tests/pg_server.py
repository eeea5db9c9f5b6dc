"""Find a PostgreSQL server for the tests, or start a throwaway one.

Order: ``TEST_DATABASE_URL``; else the default ``postgresql://postgres@127.0.0.1:5432/test``;
else a temporary cluster from local PostgreSQL binaries (initdb/pg_ctl); else a clear failure
saying how to provide one. Tests never skip for want of a database.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid

import psycopg

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
HOW_TO = (
    "No PostgreSQL server for the tests. Set TEST_DATABASE_URL=postgresql://user@host:port/db "
    "(a role allowed to CREATE DATABASE), or run one on 127.0.0.1:5432 with user postgres, "
    "or install the PostgreSQL server binaries (Debian: apt-get install postgresql) so the "
    "tests can start a throwaway cluster."
)


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _binaries() -> str | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.insert(0, found)
    return os.path.dirname(candidates[0]) if candidates else None


def _start_throwaway() -> str:
    bindir = _binaries()
    if bindir is None:
        raise RuntimeError(HOW_TO)
    datadir = tempfile.mkdtemp(prefix="litemaas-sync-pg-")
    port = _free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError(HOW_TO + " (running as root without a 'postgres' user)") from None
        shutil.chown(datadir, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        prefix + [f"{bindir}/initdb", "-D", datadir, "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        prefix
        + [
            f"{bindir}/pg_ctl",
            "-D",
            datadir,
            "-w",
            "-l",
            f"{datadir}/log",
            "-o",
            f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    atexit.register(
        lambda: subprocess.run(
            prefix + [f"{bindir}/pg_ctl", "-D", datadir, "-m", "immediate", "stop"],
            capture_output=True,
        )
    )
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def server_url() -> str:
    """A URL to a database on a server where we may create databases."""
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        if not _reachable(explicit):
            raise RuntimeError(f"TEST_DATABASE_URL is set but unreachable. {HOW_TO}")
        return explicit
    if _reachable(DEFAULT_URL):
        return DEFAULT_URL
    return _start_throwaway()


def with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def create_database(server: str, *, template: str | None = None, prefix: str = "lms_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        clause = f" TEMPLATE {template}" if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{clause}')
    return name


def drop_database(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
