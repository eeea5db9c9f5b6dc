"""Alembic environment: runs on the connection sync_core.migrate hands over, or on DATABASE_URL."""

from __future__ import annotations

from alembic import context

from sync_core.migrate import VERSION_TABLE

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from sync_core.config import Settings
    from sync_core.db import create_db_engine

    engine = create_db_engine(Settings.from_env())
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        version_table=VERSION_TABLE,
        transaction_per_migration=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
