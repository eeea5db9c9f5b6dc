"""SQLite: a version for every ``models`` row, moved by every write of it, so a re-sync plans the
rows nobody wrote since the last sync from its record without reading them, as it does on
PostgreSQL with ``xmin`` (``sync_core.known_entries``). SQLite keeps no such version: the
triggers that count writes (0008) now also stamp the row they wrote with the new count, in a
table of its own (the ``models`` table is LiteMaaS's and keeps its columns).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_COUNT = "UPDATE model_sync_writes SET count = count + 1;"
_STAMP = ("INSERT OR REPLACE INTO model_row_versions (id, version) "
          "SELECT NEW.id, count FROM model_sync_writes;")
_TRIGGERS = {
    "insert": f"{_COUNT} {_STAMP}",
    # (an id changed by hand leaves no version behind under the old one)
    "update": f"{_COUNT} DELETE FROM model_row_versions WHERE id = OLD.id; {_STAMP}",
    "delete": f"{_COUNT} DELETE FROM model_row_versions WHERE id = OLD.id;",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE TABLE IF NOT EXISTS model_row_versions "
               "(id TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL) WITHOUT ROWID")
    # every row as it is now: the count so far (later writes stamp higher counts)
    op.execute("INSERT OR REPLACE INTO model_row_versions (id, version) "
               "SELECT models.id, model_sync_writes.count FROM models, model_sync_writes")
    for event, body in _TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS models_{event}_counted")
        op.execute(f"CREATE TRIGGER models_{event}_versioned AFTER {event.upper()} ON models "
                   f"BEGIN {body} END")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for event in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS models_{event}_versioned")
        op.execute(f"CREATE TRIGGER IF NOT EXISTS models_{event}_counted AFTER {event.upper()} "
                   f"ON models BEGIN {_COUNT} END")
    op.execute("DROP TABLE IF EXISTS model_row_versions")
