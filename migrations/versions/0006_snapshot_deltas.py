"""Snapshots stored as the changes from the snapshot before (``snapshots``): the column names the
snapshot a delta is read against, so pruning keeps it while a kept snapshot needs it. Code from
before this revision cannot restore a delta snapshot (it reports the snapshot as unreadable).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("model_sync_snapshots",
                  sa.Column("base_sync_audit_id", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_sync_snapshots") as batch:
        batch.drop_column("base_sync_audit_id")
