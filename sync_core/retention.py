"""Retention: models unavailable for longer than ``LITELLM_UNAVAILABLE_RETENTION_DAYS`` are
deleted, as a planned action reviewed in the diff; their history stays in the audit log.

"Unavailable since" is the row's ``updated_at``: a sync never touches a row it has marked
unavailable until LiteLLM serves it again, so that is when it became unavailable (an admin's
edit restarts the clock, which errs on the side of keeping the row).
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import sqlalchemy as sa

from .db import is_postgres
from .schema import models


def unavailable_since(conn: sa.Connection) -> dict[str, datetime]:
    query = sa.select(models.c.id, models.c.updated_at).where(models.c.availability != "available")
    found = {}
    for model_id, updated_at in conn.execute(query):
        if updated_at is not None:
            if isinstance(updated_at, str):
                updated_at = datetime.fromisoformat(updated_at)
            found[model_id] = updated_at if updated_at.tzinfo else updated_at.replace(tzinfo=UTC)
    return found


def delete_rows(conn: sa.Connection, ids: list[str]) -> int:
    """One statement whatever the number of rows; only rows still unavailable are deleted."""
    if not ids:
        return 0
    payload = orjson.dumps(ids).decode()
    if is_postgres(conn):
        sql = (
            "DELETE FROM models WHERE availability <> 'available' AND id IN "
            "(SELECT jsonb_array_elements_text(CAST(:ids AS jsonb)))"
        )
    else:
        sql = (
            "DELETE FROM models WHERE availability <> 'available' AND id IN "
            "(SELECT value FROM json_each(:ids))"
        )
    return conn.execute(sa.text(sql), {"ids": payload}).rowcount


def referenced_by(conn: sa.Connection) -> list[str]:
    """Tables with a foreign key to ``models`` (LiteMaaS subscriptions, API keys, ...). While
    there are any, retention deletes nothing: a delete would fail the sync, or cascade into
    user data."""
    if is_postgres(conn):
        rows = conn.execute(sa.text(
            "SELECT DISTINCT conrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f' AND confrelid = to_regclass('models')"))
        return sorted(r[0] for r in rows)
    tables = [r[0] for r in conn.execute(sa.text(
        "SELECT name FROM sqlite_master WHERE type = 'table'"))]
    found = []
    for table in tables:
        keys = conn.execute(sa.text(f"PRAGMA foreign_key_list(\"{table}\")")).fetchall()
        if any(k[2] == "models" for k in keys):
            found.append(table)
    return found
