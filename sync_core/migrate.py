"""Schema migrations (Alembic, ``migrations/``) run from code: start-up, CLI and tests.

Our version table has its own name so it never collides with anything else in a shared
LiteMaaS database. Alembic is imported only to migrate or to read its scripts: every CLI
command checks :func:`is_up_to_date` first, and that is one query (importing Alembic would
add ~0.1 s to each command).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "litemaas_sync_alembic_version"
#: The newest migration in ``migrations/versions`` (tests check it against Alembic's head).
HEAD_REVISION = "0009"
#: Advisory lock serialising migrations of replicas that start together (not the sync lock).
MIGRATION_LOCK = (0x4C4D5353, 2)


def _migrations_dir() -> Path:
    """The repository's ``migrations/`` in a checkout; the packaged copy in an installation."""
    checkout = Path(__file__).resolve().parent.parent / "migrations"
    if (checkout / "env.py").exists():
        return checkout
    return Path(str(resources.files("sync_core._migrations")))


MIGRATIONS_DIR = _migrations_dir()


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}
        ).get_current_revision()


def is_up_to_date(engine: Engine) -> bool:
    """Whether the schema is at :data:`HEAD_REVISION` (a missing version table: not)."""
    exists = ("SELECT to_regclass(:t) IS NOT NULL" if engine.dialect.name == "postgresql" else
              "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = :t")
    with engine.connect() as conn:  # (not the inspector: 7 ms of every command, measured)
        if not conn.execute(sa.text(exists), {"t": VERSION_TABLE}).scalar():
            return False
        found = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
        return list(found) == [HEAD_REVISION]


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; returns the revision now applied."""
    from alembic import command

    config = _config()
    connection = engine.connect()
    if engine.dialect.name == "sqlite":  # replicas starting together: one migrates at a time
        connection = connection.execution_options(sqlite_begin="IMMEDIATE")
    with connection as conn, conn.begin():
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(
                f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK[0]}, {MIGRATION_LOCK[1]})"
            )
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return current_revision(engine)
