"""Engines for PostgreSQL (psycopg 3, pooled) and the embedded SQLite default.

SQLite needs two things pysqlite does not do by itself: real transactions that we begin
ourselves (so ``BEGIN IMMEDIATE`` can take the write lock for a sync) and WAL mode, so pages keep
reading while a sync writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from .config import Settings

SQLITE_BUSY_TIMEOUT_S = 5.0


def _json_serializer(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL, or None for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def _configure_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection):  # type: ignore[no-untyped-def]
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def create_db_engine(settings_or_url: Settings | str, **overrides: object) -> Engine:
    """An engine for the configured database; pool and timeouts from the DB_* settings."""
    settings = settings_or_url if isinstance(settings_or_url, Settings) else None
    url = settings.database_url if settings else str(settings_or_url)
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        options: dict[str, object] = {
            "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            "json_serializer": _json_serializer,
            "json_deserializer": orjson.loads,
        }
        if path is None:
            options["poolclass"] = sa.pool.StaticPool
        options.update(overrides)
        engine = sa.create_engine(url, **options)
        _configure_sqlite(engine)
        return engine

    max_connections = settings.db_max_connections if settings else 10
    idle_ms = settings.db_idle_timeout_ms if settings else 30000
    connect_ms = settings.db_connection_timeout_ms if settings else 2000
    options = {
        "pool_size": max_connections,
        "max_overflow": 0,
        "pool_timeout": max(connect_ms / 1000, 1),
        "pool_recycle": max(idle_ms // 1000, 1) if idle_ms else -1,
        "pool_pre_ping": True,
        "connect_args": {
            "connect_timeout": max(1, round(connect_ms / 1000)),
            "application_name": "litemaas-sync",
        },
        "json_serializer": _json_serializer,
        "json_deserializer": orjson.loads,
    }
    options.update(overrides)
    return sa.create_engine(url, **options)


def is_postgres(engine_or_conn: Engine | sa.Connection) -> bool:
    return engine_or_conn.dialect.name == "postgresql"


def upsert_insert(conn: sa.Connection) -> Any:
    """The dialect's ``insert`` construct, which has ``on_conflict_do_update`` (SQLite's
    imported only on SQLite: 5 ms of every command's start-up otherwise)."""
    if is_postgres(conn):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert
