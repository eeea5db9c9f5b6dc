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
