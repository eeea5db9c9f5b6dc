"""SQLite: a version for every ``models`` row, moved by every write of it, so a re-sync plans the
rows nobody wrote since the last sync from its record without reading them, as it does on
PostgreSQL with ``xmin`` (``sync_core.known_entries``). SQLite keeps no such version: the
triggers that count writes (0008) now also stamp the row they wrote with the new count, in a
table of its own (the ``models`` table is LiteMaaS's and keeps its columns).

A stamp must never come back for a row the record knew at that stamp: the count starts at a
random 48-bit offset here and whenever its row has to be made again (a trigger re-creates a
missing one), so going back below 0008 and forward again (which starts the count anew), or a
lost count row, cannot give a row a version an earlier sync recorded. A row without a stamp is
simply read (``store.row_versions`` joins from ``models``), and without all these triggers in
place no version and no fast-path marker is trusted at all.

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

#: A count row made afresh starts at a random 48-bit offset, never at 0 again.
_OFFSET = "abs(random() % 281474976710656)"
# (no conflict clauses in the triggers' statements: SQLite would replace them with the one of
# the statement that fired the trigger, so an INSERT OR REPLACE into models would re-make the
# count row every time, and an INSERT OR IGNORE keep a stamp left behind)
_HEAL = ("INSERT INTO model_sync_writes (id, count) SELECT 1, " + _OFFSET
         + " WHERE NOT EXISTS (SELECT 1 FROM model_sync_writes WHERE id = 1);")
_COUNT = f"{_HEAL} UPDATE model_sync_writes SET count = count + 1 WHERE id = 1;"
_STAMP = ("DELETE FROM model_row_versions WHERE id = NEW.id; "
          "INSERT INTO model_row_versions (id, version) "
          "SELECT NEW.id, count FROM model_sync_writes WHERE id = 1;")
_MODELS = {
    "insert": f"{_COUNT} {_STAMP}",
    # (an id changed by hand leaves no version behind under the old one)
    "update": f"{_COUNT} DELETE FROM model_row_versions WHERE id = OLD.id; {_STAMP}",
    "delete": f"{_COUNT} DELETE FROM model_row_versions WHERE id = OLD.id;",
}
_EVENTS = ("insert", "update", "delete")
_PLAIN_COUNT = "UPDATE model_sync_writes SET count = count + 1;"  # (0008's)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE TABLE IF NOT EXISTS model_row_versions "
               "(id TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL) WITHOUT ROWID")
    op.execute(f"INSERT OR IGNORE INTO model_sync_writes (id, count) VALUES (1, {_OFFSET})")
    op.execute(f"UPDATE model_sync_writes SET count = count + 1 + {_OFFSET} WHERE id = 1")
    # every row as it is now: the count so far (later writes stamp higher counts)
    op.execute("INSERT OR REPLACE INTO model_row_versions (id, version) "
               "SELECT models.id, model_sync_writes.count FROM models, model_sync_writes "
               "WHERE model_sync_writes.id = 1")
    for event in _EVENTS:
        op.execute(f"DROP TRIGGER IF EXISTS models_{event}_counted")
        op.execute(f"CREATE TRIGGER models_{event}_versioned AFTER {event.upper()} ON models "
                   f"BEGIN {_MODELS[event]} END")
        op.execute(f"DROP TRIGGER IF EXISTS model_sync_policies_{event}_counted")
        op.execute(f"CREATE TRIGGER model_sync_policies_{event}_counted AFTER {event.upper()} "
                   f"ON model_sync_policies BEGIN {_COUNT} END")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for event in _EVENTS:
        op.execute(f"DROP TRIGGER IF EXISTS models_{event}_versioned")
        op.execute(f"CREATE TRIGGER IF NOT EXISTS models_{event}_counted AFTER {event.upper()} "
                   f"ON models BEGIN {_PLAIN_COUNT} END")
        op.execute(f"DROP TRIGGER IF EXISTS model_sync_policies_{event}_counted")
        op.execute(f"CREATE TRIGGER model_sync_policies_{event}_counted AFTER {event.upper()} "
                   f"ON model_sync_policies BEGIN {_PLAIN_COUNT} END")
    op.execute("DROP TABLE IF EXISTS model_row_versions")
