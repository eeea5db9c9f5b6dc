"""The audit trail: one ``audit_logs`` row per sync (LiteMaaS's table and action names).

Written in a transaction of its own, after the sync's data transaction ended, so a failed
sync is audited even though its data rolled back.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .schema import audit_logs

SYNC_ACTION = "MODELS_SYNC"
MODEL_RESOURCE = "MODEL"
#: Per-model errors kept in one audit row; the count is always complete.
MAX_AUDITED_ERRORS = 500


def write_audit(
    engine: Engine,
    *,
    action: str,
    success: bool,
    metadata: Mapping[str, Any],
    error_message: str | None = None,
    resource_type: str = MODEL_RESOURCE,
    resource_id: str | None = None,
    new_values: Mapping[str, Any] | None = None,
    ip_address: str | None = None,
    user_agent: str | None = None,
    audit_id: str | None = None,
) -> str:
    """Write one audit row; its id (``audit_id`` when the caller chose it beforehand)."""
    audit_id = audit_id or str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            sa.insert(audit_logs).values(
                id=audit_id,
                user_id=None,
                action=action,
                resource_type=resource_type,
                resource_id=resource_id,
                new_values=dict(new_values) if new_values is not None else None,
                ip_address=ip_address,
                user_agent=user_agent,
                success=success,
                error_message=error_message,
                metadata=dict(metadata),
                created_at=datetime.now(UTC),
            )
        )
    return audit_id


def _as_dict(value: Any) -> Any:
    if isinstance(value, str | bytes):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def list_audit(
    engine: Engine,
    *,
    action: str | None = None,
    success: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Newest first, filtered in SQL (the actor is the one recorded in the row's metadata)."""
    query = sa.select(audit_logs).order_by(audit_logs.c.created_at.desc()).limit(limit)
    if actor:
        query = query.where(audit_logs.c.metadata["actor"].as_string() == actor)
    if action:
        query = query.where(audit_logs.c.action == action)
    if success is not None:
        query = query.where(audit_logs.c.success == success)
    if since is not None:
        query = query.where(audit_logs.c.created_at >= since)
    if until is not None:
        query = query.where(audit_logs.c.created_at < until)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    for row in rows:
        row["metadata"] = _as_dict(row.get("metadata")) or {}
        row["id"] = str(row["id"])
    return rows


def last_sync(engine: Engine, *, successful: bool | None = None) -> dict[str, Any] | None:
    rows = list_audit(engine, action=SYNC_ACTION, success=successful, limit=1)
    return rows[0] if rows else None
