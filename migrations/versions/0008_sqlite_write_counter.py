"""SQLite: a counter every write of ``models`` or ``model_sync_policies`` moves, so the re-sync
fast path (``sync_core.fast_path``) can tell that nobody wrote the catalogue since the last sync.
PostgreSQL needs none: its ``updated_at`` has microseconds. SQLite's has whole seconds, so an
edit in the same second as a sync could go unseen by the timestamps alone.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TRIGGERS = [(table, event) for table in ("models", "model_sync_policies")
             for event in ("insert", "update", "delete")]


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE TABLE IF NOT EXISTS model_sync_writes "
               "(id INTEGER PRIMARY KEY CHECK (id = 1), count INTEGER NOT NULL)")
    op.execute("INSERT OR IGNORE INTO model_sync_writes (id, count) VALUES (1, 0)")
    for table, event in _TRIGGERS:
        op.execute(f"CREATE TRIGGER IF NOT EXISTS {table}_{event}_counted AFTER {event.upper()} "
                   f"ON {table} BEGIN UPDATE model_sync_writes SET count = count + 1; END")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, event in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_{event}_counted")
    op.execute("DROP TABLE IF EXISTS model_sync_writes")
