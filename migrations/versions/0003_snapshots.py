"""Catalogue snapshots after syncs, so an admin can restore an earlier state as a reviewed plan.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute(
        f"""CREATE TABLE IF NOT EXISTS model_sync_snapshots (
            sync_audit_id VARCHAR(36) PRIMARY KEY,
            created_at {"TIMESTAMP WITH TIME ZONE" if postgres else "TIMESTAMP"} NOT NULL,
            model_count INTEGER NOT NULL,
            entries {"BYTEA" if postgres else "BLOB"} NOT NULL
        )"""
    )
    op.execute("CREATE INDEX IF NOT EXISTS idx_model_sync_snapshots_created_at "
               "ON model_sync_snapshots (created_at)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS model_sync_snapshots")
