"""Reading the current catalogue and writing a plan, set-based, on PostgreSQL and SQLite.

Every write is one statement per kind of change whatever the number of models: the rows travel
as one JSON document that the database unpacks (``jsonb_to_recordset`` on PostgreSQL,
``json_each`` on SQLite). The caller owns the transaction; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import orjson
import sqlalchemy as sa

from .db import is_postgres
from .mapping import COST_QUANTUM, ModelRow, canonical_json
from .plan import INSERT, MARK_UNAVAILABLE, RESTORE, UPDATE, SyncPlan
from .schema import models

# --- reading -----------------------------------------------------------------------------------

_READ_COLUMNS = (
    "id",
    "name",
    "provider",
    "description",
    "context_length",
    "input_cost_per_token",
    "output_cost_per_token",
    "supports_vision",
    "supports_function_calling",
    "supports_parallel_function_calling",
    "supports_tool_choice",
    "supports_streaming",
    "availability",
)


def to_cost(value: Any) -> Decimal | None:
    """A stored price as an exact DECIMAL(12,10) value, whatever the driver returned."""
    if value is None:
        return None
    number = (
        value
        if isinstance(value, Decimal)
        else Decimal(repr(value) if isinstance(value, float) else str(value))
    )
    return number.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)


def _features(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = orjson.loads(value)
    return tuple(str(v) for v in value)


def read_current_rows(conn: sa.Connection) -> dict[str, ModelRow]:
    """Every ``models`` row as the plan compares it (one SELECT)."""
    columns = [models.c[name] for name in _READ_COLUMNS]
    query = sa.select(
        *columns,
        sa.cast(models.c.features, sa.Text).label("features_json")
        if not is_postgres(conn)
        else models.c.features,
        sa.cast(models.c.metadata, sa.Text).label("metadata_text"),
    )
    rows: dict[str, ModelRow] = {}
    for record in conn.execute(query).mappings():
        metadata = orjson.loads(record["metadata_text"]) if record["metadata_text"] else {}
        if not isinstance(metadata, dict):
            metadata = {"value": metadata}
        features = record["features"] if "features" in record else record["features_json"]
        rows[record["id"]] = ModelRow(
            id=record["id"],
            name=record["name"],
            provider=record["provider"],
            description=record["description"],
            context_length=record["context_length"],
            input_cost_per_token=to_cost(record["input_cost_per_token"]),
            output_cost_per_token=to_cost(record["output_cost_per_token"]),
            supports_vision=bool(record["supports_vision"]),
            supports_function_calling=bool(record["supports_function_calling"]),
            supports_parallel_function_calling=bool(record["supports_parallel_function_calling"]),
            supports_tool_choice=bool(record["supports_tool_choice"]),
            supports_streaming=bool(record["supports_streaming"])
            if record["supports_streaming"] is not None
            else True,
            features=_features(features),
            availability=record["availability"] or "available",
            metadata=metadata,
            metadata_json=canonical_json(metadata),
        )
    return rows


# --- writing -----------------------------------------------------------------------------------


def _payload(rows: Iterable[ModelRow]) -> str:
    """The rows as one JSON array; metadata is embedded as its canonical JSON, not re-encoded."""
    return orjson.dumps(
        [
            {
                "id": r.id,
                "name": r.name,
                "provider": r.provider,
                "description": r.description,
                "context_length": r.context_length,
                "input_cost_per_token": None
                if r.input_cost_per_token is None
                else str(r.input_cost_per_token),
                "output_cost_per_token": None
                if r.output_cost_per_token is None
                else str(r.output_cost_per_token),
                "supports_vision": r.supports_vision,
                "supports_function_calling": r.supports_function_calling,
                "supports_parallel_function_calling": r.supports_parallel_function_calling,
                "supports_tool_choice": r.supports_tool_choice,
                "supports_streaming": r.supports_streaming,
                "features": list(r.features),
                "availability": r.availability,
                "metadata": orjson.Fragment(r.metadata_json),
            }
            for r in rows
        ]
    ).decode()


_PG_RECORD = """jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
    id text, name text, provider text, description text, context_length integer,
    input_cost_per_token numeric, output_cost_per_token numeric, supports_vision boolean,
    supports_function_calling boolean, supports_parallel_function_calling boolean,
    supports_tool_choice boolean, supports_streaming boolean, features jsonb,
    availability text, metadata jsonb)"""

_PG_INSERT = f"""
INSERT INTO models (id, name, provider, description, context_length, input_cost_per_token,
    output_cost_per_token, supports_vision, supports_function_calling,
    supports_parallel_function_calling, supports_tool_choice, supports_streaming, features,
    availability, metadata, created_at, updated_at)
SELECT r.id, r.name, r.provider, r.description, r.context_length, r.input_cost_per_token,
    r.output_cost_per_token, r.supports_vision, r.supports_function_calling,
    r.supports_parallel_function_calling, r.supports_tool_choice, r.supports_streaming,
    ARRAY(SELECT jsonb_array_elements_text(r.features)), r.availability, r.metadata, now(), now()
FROM {_PG_RECORD}"""

_PG_UPDATE = f"""
UPDATE models AS m SET name = r.name, provider = r.provider,
    description = COALESCE(m.description, r.description), context_length = r.context_length,
    input_cost_per_token = r.input_cost_per_token, output_cost_per_token = r.output_cost_per_token,
    supports_vision = r.supports_vision, supports_function_calling = r.supports_function_calling,
    supports_parallel_function_calling = r.supports_parallel_function_calling,
    supports_tool_choice = r.supports_tool_choice, supports_streaming = r.supports_streaming,
    features = ARRAY(SELECT jsonb_array_elements_text(r.features)),
    availability = r.availability, metadata = r.metadata, updated_at = now()
FROM {_PG_RECORD}
WHERE m.id = r.id"""

_PG_SET_AVAILABILITY = """
UPDATE models SET availability = :availability, updated_at = now()
WHERE id IN (SELECT jsonb_array_elements_text(CAST(:ids AS jsonb)))"""

_SQLITE_RECORD = """(SELECT
    json_extract(value, '$.id') AS id, json_extract(value, '$.name') AS name,
    json_extract(value, '$.provider') AS provider,
    json_extract(value, '$.description') AS description,
    json_extract(value, '$.context_length') AS context_length,
    json_extract(value, '$.input_cost_per_token') AS input_cost_per_token,
    json_extract(value, '$.output_cost_per_token') AS output_cost_per_token,
    json_extract(value, '$.supports_vision') AS supports_vision,
    json_extract(value, '$.supports_function_calling') AS supports_function_calling,
    json_extract(value, '$.supports_parallel_function_calling') AS supports_parallel_function_calling,
    json_extract(value, '$.supports_tool_choice') AS supports_tool_choice,
    json_extract(value, '$.supports_streaming') AS supports_streaming,
    json_extract(value, '$.features') AS features,
    json_extract(value, '$.availability') AS availability,
    json_extract(value, '$.metadata') AS metadata
  FROM json_each(:rows)) AS r"""

_SQLITE_INSERT = f"""
INSERT INTO models (id, name, provider, description, context_length, input_cost_per_token,
    output_cost_per_token, supports_vision, supports_function_calling,
    supports_parallel_function_calling, supports_tool_choice, supports_streaming, features,
    availability, metadata, created_at, updated_at)
SELECT r.id, r.name, r.provider, r.description, r.context_length, r.input_cost_per_token,
    r.output_cost_per_token, r.supports_vision, r.supports_function_calling,
    r.supports_parallel_function_calling, r.supports_tool_choice, r.supports_streaming,
    r.features, r.availability, r.metadata, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP
FROM {_SQLITE_RECORD}"""

_SQLITE_UPDATE = f"""
UPDATE models SET name = r.name, provider = r.provider,
    description = COALESCE(models.description, r.description), context_length = r.context_length,
    input_cost_per_token = r.input_cost_per_token, output_cost_per_token = r.output_cost_per_token,
    supports_vision = r.supports_vision, supports_function_calling = r.supports_function_calling,
    supports_parallel_function_calling = r.supports_parallel_function_calling,
    supports_tool_choice = r.supports_tool_choice, supports_streaming = r.supports_streaming,
    features = r.features, availability = r.availability, metadata = r.metadata,
    updated_at = CURRENT_TIMESTAMP
FROM {_SQLITE_RECORD}
WHERE models.id = r.id"""

_SQLITE_SET_AVAILABILITY = """
UPDATE models SET availability = :availability, updated_at = CURRENT_TIMESTAMP
WHERE id IN (SELECT value FROM json_each(:ids))"""


def insert_rows(conn: sa.Connection, rows: list[ModelRow]) -> int:
    if not rows:
        return 0
    sql = _PG_INSERT if is_postgres(conn) else _SQLITE_INSERT
    return conn.execute(sa.text(sql), {"rows": _payload(rows)}).rowcount


def update_rows(conn: sa.Connection, rows: list[ModelRow]) -> int:
    """Rewrite the synced fields; description only where the database has none."""
    if not rows:
        return 0
    sql = _PG_UPDATE if is_postgres(conn) else _SQLITE_UPDATE
    return conn.execute(sa.text(sql), {"rows": _payload(rows)}).rowcount


def set_availability(conn: sa.Connection, ids: list[str], availability: str) -> int:
    if not ids:
        return 0
    sql = _PG_SET_AVAILABILITY if is_postgres(conn) else _SQLITE_SET_AVAILABILITY
    params = {"ids": orjson.dumps(ids).decode(), "availability": availability}
    return conn.execute(sa.text(sql), params).rowcount


def apply_plan(conn: sa.Connection, plan: SyncPlan) -> Mapping[str, int]:
    """Write every change of the plan inside the caller's transaction; return rows touched."""
    inserts = [a.target for a in plan.by_action(INSERT) if a.target]
    rewrites = [a.target for a in plan.actions if a.action in (UPDATE, RESTORE) and a.target]
    unavailable = [a.model_id for a in plan.by_action(MARK_UNAVAILABLE)]
    return {
        "inserted": insert_rows(conn, inserts),
        "updated": update_rows(conn, rewrites),
        "marked_unavailable": set_availability(conn, unavailable, "unavailable"),
    }


def model_counts(conn: sa.Connection) -> dict[str, int]:
    """Rows per availability value (unexpected values counted under their own name)."""
    query = sa.select(models.c.availability, sa.func.count()).group_by(models.c.availability)
    counts = {"available": 0, "unavailable": 0}
    for availability, count in conn.execute(query):
        counts[availability or "available"] = counts.get(availability or "available", 0) + count
    counts["total"] = sum(counts.values())
    return counts
