"""Snapshots of re-syncs that planned rows without reading them are built by PostgreSQL
itself (``snapshots._PG_SNAPSHOT``) and stored as plain JSON that the column compresses: with LZ4 where the server has it (PostgreSQL 14 and later,
built with lz4), else the default pglz. Snapshots stored gzip-compressed before stay readable.
Code from before this revision reads only gzip-compressed snapshots: after a downgrade, the
snapshots taken since cannot be restored from (they stay listed).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_LZ4 = sa.text(
    "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' "
    "AND 'lz4' = ANY(enumvals)")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and bind.execute(_LZ4).first() is not None:
        op.execute("ALTER TABLE model_sync_snapshots ALTER COLUMN entries SET COMPRESSION lz4")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and bind.execute(_LZ4).first() is not None:
        op.execute("ALTER TABLE model_sync_snapshots ALTER COLUMN entries "
                   "SET COMPRESSION default")
