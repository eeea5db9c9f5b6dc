"""SQLAlchemy table definitions for the tables the product reads and writes.

The DDL itself lives in the Alembic migrations (``migrations/``), which also adopt an existing
LiteMaaS database; these ``Table`` objects describe the columns we use, portable across
PostgreSQL (TEXT[], JSONB, UUID, INET) and SQLite (JSON text, CHAR(36), VARCHAR).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from .mapping import SYNCED_FIELDS

metadata = sa.MetaData()

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TextList = sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql")
UUIDText = sa.String(36).with_variant(postgresql.UUID(as_uuid=False), "postgresql")
IPAddress = sa.String(45).with_variant(postgresql.INET(), "postgresql")
Cost = sa.Numeric(12, 10, asdecimal=True)

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("provider", sa.String(100), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("category", sa.String(100), server_default="Language Model"),
    sa.Column("context_length", sa.Integer),
    sa.Column("input_cost_per_token", Cost),
    sa.Column("output_cost_per_token", Cost),
    sa.Column("supports_vision", sa.Boolean, server_default=sa.false()),
    sa.Column("supports_function_calling", sa.Boolean, server_default=sa.false()),
    sa.Column("supports_parallel_function_calling", sa.Boolean, server_default=sa.false()),
    sa.Column("supports_tool_choice", sa.Boolean, server_default=sa.false()),
    sa.Column("supports_streaming", sa.Boolean, server_default=sa.true()),
    sa.Column("features", TextList),
    sa.Column("availability", sa.String(20), server_default="available"),
    sa.Column("version", sa.String(50)),
    sa.Column("metadata", JSONDocument),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

audit_logs = sa.Table(
    "audit_logs",
    metadata,
    sa.Column("id", UUIDText, primary_key=True),
    sa.Column("user_id", UUIDText, nullable=True),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("resource_type", sa.String(50), nullable=False),
    sa.Column("resource_id", sa.String(255)),
    sa.Column("old_values", JSONDocument),
    sa.Column("new_values", JSONDocument),
    sa.Column("ip_address", IPAddress),
    sa.Column("user_agent", sa.Text),
    sa.Column("success", sa.Boolean),
    sa.Column("error_message", sa.Text),
    sa.Column("metadata", JSONDocument),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
)

#: Columns the sync writes, in the order the set-based statements use.
MODEL_WRITE_COLUMNS = ("id", *SYNCED_FIELDS[:2], "description", *SYNCED_FIELDS[2:])
