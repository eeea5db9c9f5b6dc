"""Control state shared by every replica (the scheduler's pause switch, approvals, ...) and the
admins' per-model policies (pins, protected fields).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute(
        f"""CREATE TABLE IF NOT EXISTS model_sync_control (
            key VARCHAR(100) PRIMARY KEY,
            value {"JSONB" if postgres else "TEXT"} NOT NULL,
            updated_by VARCHAR(255),
            updated_at {"TIMESTAMP WITH TIME ZONE" if postgres else "TIMESTAMP"}
                DEFAULT CURRENT_TIMESTAMP
        )"""
    )
    op.execute(
        f"""CREATE TABLE IF NOT EXISTS model_sync_policies (
            model_id VARCHAR(255) PRIMARY KEY,
            pinned BOOLEAN NOT NULL DEFAULT false,
            protected_fields {"JSONB" if postgres else "TEXT"} NOT NULL DEFAULT '[]',
            updated_by VARCHAR(255),
            updated_at {"TIMESTAMP WITH TIME ZONE" if postgres else "TIMESTAMP"}
                DEFAULT CURRENT_TIMESTAMP
        )"""
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS model_sync_policies")
    op.execute("DROP TABLE IF EXISTS model_sync_control")
