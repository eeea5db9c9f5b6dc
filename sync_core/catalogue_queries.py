"""Read queries the dashboard and the API need, and the per-model change record they read.

The pages hold no SQL: every read of ``models`` and ``audit_logs`` for display is here, filtered
in SQL so a 10,000-model catalogue is not pulled into a page to be filtered there. The audit row
of a sync (``MODELS_SYNC``) carries counts only; :func:`change_recorder` adds, after each
successful sync, one ``MODEL_CHANGES`` row listing what changed per model and the model counts
after it, which is where a model's change history and the availability timeline come from.
No streamlit, no pandas: plain values in, plain values out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from . import audit
from .history import CHANGES_ACTION, model_history  # noqa: F401  (re-exported for the pages)
from .mapping import clean_metadata
from .schema import audit_logs, models
from .store import model_counts

log = logging.getLogger("sync_core.catalogue_queries")

PER_MILLION = Decimal(1_000_000)

#: Capability filter name → column. The order is the order the pages show them in.
CAPABILITIES: dict[str, str] = {
    "vision": "supports_vision",
    "function_calling": "supports_function_calling",
    "parallel_function_calling": "supports_parallel_function_calling",
    "tool_choice": "supports_tool_choice",
    "streaming": "supports_streaming",
}
AVAILABILITIES = ("available", "unavailable")


@dataclass(frozen=True)
class ModelFilter:
    """What the catalogue page asks for; every field narrows the result (empty = no filter)."""

    search: str = ""
    providers: tuple[str, ...] = ()
    availability: str | None = None
    capabilities: tuple[str, ...] = ()
    min_context: int | None = None


def per_million(cost: Any) -> float | None:
    """A per-token price as a price per 1M tokens (what admins compare), exact before float."""
    if cost is None:
        return None
    value = cost if isinstance(cost, Decimal) else Decimal(str(cost))
    return float(value * PER_MILLION)


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return [str(value)]
    return [str(v) for v in value]


def _dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return {}
    return dict(value) if isinstance(value, Mapping) else {}


def _where(query: sa.Select, flt: ModelFilter) -> sa.Select:
    if flt.search.strip():
        pattern = f"%{flt.search.strip().lower()}%"
        query = query.where(
            sa.or_(
                sa.func.lower(models.c.name).like(pattern),
                sa.func.lower(models.c.provider).like(pattern),
                sa.func.lower(sa.func.coalesce(models.c.description, "")).like(pattern),
            )
        )
    if flt.providers:
        query = query.where(models.c.provider.in_(flt.providers))
    if flt.availability:
        availability = sa.func.coalesce(models.c.availability, "available")
        query = query.where(availability == flt.availability)
    for capability in flt.capabilities:
        query = query.where(models.c[CAPABILITIES[capability]].is_(True))
    if flt.min_context:
        query = query.where(models.c.context_length >= flt.min_context)
    return query


def list_models(engine: Engine, flt: ModelFilter | None = None) -> list[dict[str, Any]]:
    """The catalogue table: one dict per model, prices per 1M tokens, capabilities as names."""
    flt = flt or ModelFilter()
    unknown = set(flt.capabilities) - set(CAPABILITIES)
    if unknown:
        raise ValueError(f"unknown capabilities: {sorted(unknown)}")
    columns = [
        models.c[name]
        for name in (
            "id",
            "name",
            "provider",
            "description",
            "context_length",
            "input_cost_per_token",
            "output_cost_per_token",
            "availability",
            "features",
            "updated_at",
            "created_at",
            *CAPABILITIES.values(),
        )
    ]
    query = _where(sa.select(*columns), flt).order_by(models.c.provider, models.c.name)
    with engine.connect() as conn:
        records = conn.execute(query).mappings().all()
    return [
        {
            "id": r["id"],
            "name": r["name"],
            "provider": r["provider"],
            "availability": r["availability"] or "available",
            "context_length": r["context_length"],
            "input_per_1m": per_million(r["input_cost_per_token"]),
            "output_per_1m": per_million(r["output_cost_per_token"]),
            "capabilities": [name for name, col in CAPABILITIES.items() if r[col]],
            "features": _list(r["features"]),
            "description": r["description"],
            "updated_at": r["updated_at"],
            "created_at": r["created_at"],
        }
        for r in records
    ]


def providers(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(models.c.provider).distinct().order_by(models.c.provider)
            ).scalars()
        )


def catalogue_kpis(engine: Engine) -> dict[str, Any]:
    """Counts for the catalogue's metric tiles (one round trip per figure, a handful in all)."""
    with engine.connect() as conn:
        counts = model_counts(conn)
        provider_count = (
            conn.execute(sa.select(sa.func.count(sa.distinct(models.c.provider)))).scalar() or 0
        )
        last_update = conn.execute(sa.select(sa.func.max(models.c.updated_at))).scalar()
    last_ok = audit.last_sync(engine, successful=True)
    return {
        **counts,
        "providers": provider_count,
        "last_update": last_update,
        "last_sync_at": last_ok["created_at"] if last_ok else None,
    }


def get_model(engine: Engine, model_id: str) -> dict[str, Any] | None:
    """One model's full row, metadata split into its raw LiteLLM parts (credentials removed)."""
    with engine.connect() as conn:
        record = conn.execute(sa.select(models).where(models.c.id == model_id)).mappings().first()
    if record is None:
        return None
    row = dict(record)
    metadata = clean_metadata(_dict(row.pop("metadata", None)))
    row["features"] = _list(row.get("features"))
    row["input_per_1m"] = per_million(row.get("input_cost_per_token"))
    row["output_per_1m"] = per_million(row.get("output_cost_per_token"))
    for name in ("input_cost_per_token", "output_cost_per_token"):
        if row.get(name) is not None:
            row[name] = format(Decimal(str(row[name])).normalize(), "f")
    row["litellm_model_info"] = metadata.get("litellm_model_info") or {}
    row["litellm_params"] = metadata.get("litellm_params") or {}
    return row


# --- audit views --------------------------------------------------------------------------------


def sync_runs(
    engine: Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    success: bool | None = None,
    limit: int = 2000,
) -> list[dict[str, Any]]:
    """Sync audit rows flattened for tables and charts: one dict per sync, newest first."""
    runs = []
    for row in audit.list_audit(
        engine, action=audit.SYNC_ACTION, success=success, since=since, until=until, limit=limit
    ):
        meta = row["metadata"]
        counts = meta.get("counts") or {}
        runs.append(
            {
                "id": row["id"],
                "at": row["created_at"],
                "success": bool(row["success"]),
                "trigger": meta.get("trigger"),
                "actor": meta.get("actor"),
                "reason": meta.get("reason"),
                "duration_ms": meta.get("durationMs"),
                "new": counts.get("new", 0),
                "updated": counts.get("updated", 0),
                "unavailable": counts.get("unavailable", 0),
                "restored": counts.get("restored", 0),
                "errors": counts.get("errors", 0),
                "error_kind": meta.get("errorKind"),
                "error_message": row["error_message"],
                "source": meta.get("source"),
                "options": meta.get("options") or {},
                "metadata": meta,
            }
        )
    return runs


def audit_actions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(audit_logs.c.action).distinct().order_by(audit_logs.c.action)
            ).scalars()
        )


def audit_rows(
    engine: Engine,
    *,
    action: str | None = None,
    success: bool | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 2000,
) -> list[dict[str, Any]]:
    """Any audit rows, flattened; the actor filter matches the actor recorded in metadata."""
    out = []
    for row in audit.list_audit(
        engine, action=action, success=success, since=since, until=until, actor=actor or None,
        limit=limit,
    ):
        meta = row["metadata"]
        out.append(
            {
                "id": row["id"],
                "at": row["created_at"],
                "action": row["action"],
                "success": row["success"],
                "actor": meta.get("actor"),
                "trigger": meta.get("trigger"),
                "error_message": row["error_message"],
                "metadata": meta,
            }
        )
    return out


def availability_timeline(engine: Engine, *, limit: int = 1000) -> list[dict[str, Any]]:
    """Available / unavailable model counts after each recorded sync, oldest first."""
    points = []
    for row in audit.list_audit(engine, action=CHANGES_ACTION, limit=limit):
        counts = row["metadata"].get("modelCounts") or {}
        points.append(
            {
                "at": row["created_at"],
                "available": counts.get("available", 0),
                "unavailable": counts.get("unavailable", 0),
            }
        )
    return list(reversed(points))


def ids_in(values: Iterable[str], allowed: Sequence[str]) -> tuple[str, ...]:
    """Keep the known values of a user-supplied list (query parameters), in ``allowed`` order."""
    wanted = set(values)
    return tuple(v for v in allowed if v in wanted)
