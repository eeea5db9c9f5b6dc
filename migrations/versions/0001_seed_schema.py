"""The seed schema: ``models`` (indexes, updated_at trigger) and ``audit_logs``.

Adopts a LiteMaaS database as it is: tables that exist are kept, only missing columns, indexes
and triggers are added. Nothing is dropped or rewritten, so LiteMaaS's own columns
(``litellm_model_id``, ``restricted_access``, ...) and data survive.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# name, PostgreSQL type, SQLite type (portable), extra clause (default / constraint)
MODEL_COLUMNS = [
    ("id", "VARCHAR(255)", "VARCHAR(255)", "PRIMARY KEY"),
    ("name", "VARCHAR(255)", "VARCHAR(255)", "NOT NULL"),
    ("provider", "VARCHAR(100)", "VARCHAR(100)", "NOT NULL"),
    ("description", "TEXT", "TEXT", ""),
    ("category", "VARCHAR(100)", "VARCHAR(100)", "DEFAULT 'Language Model'"),
    ("context_length", "INTEGER", "INTEGER", ""),
    ("input_cost_per_token", "DECIMAL(12,10)", "DECIMAL(12,10)", ""),
    ("output_cost_per_token", "DECIMAL(12,10)", "DECIMAL(12,10)", ""),
    ("supports_vision", "BOOLEAN", "BOOLEAN", "DEFAULT false"),
    ("supports_function_calling", "BOOLEAN", "BOOLEAN", "DEFAULT false"),
    ("supports_parallel_function_calling", "BOOLEAN", "BOOLEAN", "DEFAULT false"),
    ("supports_tool_choice", "BOOLEAN", "BOOLEAN", "DEFAULT false"),
    ("supports_streaming", "BOOLEAN", "BOOLEAN", "DEFAULT true"),
    ("features", "TEXT[]", "TEXT", ""),
    (
        "availability",
        "VARCHAR(20)",
        "VARCHAR(20)",
        "DEFAULT 'available' CHECK (availability IN ('available', 'unavailable'))",
    ),
    ("version", "VARCHAR(50)", "VARCHAR(50)", ""),
    ("metadata", "JSONB", "TEXT", "DEFAULT '{}'"),
    ("created_at", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "DEFAULT CURRENT_TIMESTAMP"),
    ("updated_at", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "DEFAULT CURRENT_TIMESTAMP"),
]

AUDIT_COLUMNS = [
    ("id", "UUID", "CHAR(36)", "PRIMARY KEY"),
    ("user_id", "UUID", "CHAR(36)", ""),
    ("action", "VARCHAR(100)", "VARCHAR(100)", "NOT NULL"),
    ("resource_type", "VARCHAR(50)", "VARCHAR(50)", "NOT NULL"),
    ("resource_id", "VARCHAR(255)", "VARCHAR(255)", ""),
    ("old_values", "JSONB", "TEXT", ""),
    ("new_values", "JSONB", "TEXT", ""),
    ("ip_address", "INET", "VARCHAR(45)", ""),
    ("user_agent", "TEXT", "TEXT", ""),
    ("success", "BOOLEAN", "BOOLEAN", "DEFAULT true"),
    ("error_message", "TEXT", "TEXT", ""),
    ("metadata", "JSONB", "TEXT", "DEFAULT '{}'"),
    ("created_at", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "DEFAULT CURRENT_TIMESTAMP"),
]

INDEXES = [
    ("idx_models_provider", "models", "provider"),
    ("idx_models_availability", "models", "availability"),
    ("idx_models_updated_at", "models", "updated_at"),
    ("idx_audit_logs_created_at", "audit_logs", "created_at"),
    ("idx_audit_logs_action", "audit_logs", "action"),
    ("idx_audit_logs_resource", "audit_logs", "resource_type, resource_id"),
]

PG_TRIGGER = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'update_updated_at_column') THEN
        CREATE FUNCTION update_updated_at_column() RETURNS TRIGGER AS $fn$
        BEGIN
            NEW.updated_at = CURRENT_TIMESTAMP;
            RETURN NEW;
        END;
        $fn$ LANGUAGE plpgsql;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relname = 'models' AND NOT t.tgisinternal
          AND t.tgname IN ('update_models_updated_at', 'models_updated_at')
    ) THEN
        CREATE TRIGGER update_models_updated_at BEFORE UPDATE ON models
            FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
    END IF;
END
$$;
"""

SQLITE_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS update_models_updated_at AFTER UPDATE ON models
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE models SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;
"""


def _ensure_table(table: str, columns: list[tuple[str, str, str, str]], postgres: bool) -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    type_index = 1 if postgres else 2
    if not inspector.has_table(table):
        body = ",\n    ".join(f"{c[0]} {c[type_index]} {c[3]}".rstrip() for c in columns)
        op.execute(f"CREATE TABLE {table} (\n    {body}\n)")
        return
    existing = {c["name"] for c in inspector.get_columns(table)}
    for column in columns:
        name, clause = column[0], column[3]
        if name in existing or "PRIMARY KEY" in clause:
            continue
        # A column added to an existing table may not carry NOT NULL without a default, and
        # SQLite cannot add CHECK constraints: add the plain column with its default.
        default = clause.split(" CHECK")[0].replace("NOT NULL", "").strip()
        backfill = not postgres and "CURRENT_TIMESTAMP" in default
        if backfill:  # SQLite only adds columns with constant defaults
            default = ""
        op.execute(f"ALTER TABLE {table} ADD COLUMN {name} {column[type_index]} {default}".rstrip())
        if backfill:
            op.execute(f"UPDATE {table} SET {name} = CURRENT_TIMESTAMP WHERE {name} IS NULL")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _ensure_table("models", MODEL_COLUMNS, postgres)
    _ensure_table("audit_logs", AUDIT_COLUMNS, postgres)
    for name, table, columns in INDEXES:
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})")
    op.execute(PG_TRIGGER if postgres else SQLITE_TRIGGER)


def downgrade() -> None:
    raise RuntimeError(
        "0001 adopts tables that may hold LiteMaaS data; it is never downgraded automatically"
    )
