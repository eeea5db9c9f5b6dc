"""State every replica reads and only admins change: small JSON values by key (the scheduler's
pause switch, approved suspicious changes) and per-model policies (pins, protected fields)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .access import Actor, require_admin
from .audit import write_audit
from .db import upsert_insert
from .policy import ModelPolicy, normalise_fields
from .schema import JSONDocument, metadata

control = sa.Table(
    "model_sync_control",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", JSONDocument, nullable=False),
    sa.Column("updated_by", sa.String(255)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)

SCHEDULER_PAUSED = "scheduler.paused"
#: Audit actions of admin changes (a sync's own row is ``MODELS_SYNC``).
CONTROL_ACTION = "MODEL_SYNC_CONTROL_CHANGED"
POLICY_ACTION = "MODEL_POLICY_CHANGED"


def get_control(engine: Engine, key: str, default: Any = None) -> Any:
    with engine.connect() as conn:
        row = conn.execute(sa.select(control.c.value).where(control.c.key == key)).first()
    if row is None:
        return default
    value = row[0]
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def put_control(conn: sa.Connection, key: str, value: Any, updated_by: str) -> None:
    """Upsert one value inside the caller's transaction, in one statement (the sync's records
    are megabytes: an UPDATE that misses and then an INSERT would send them twice)."""
    insert = upsert_insert(conn)
    statement = insert(control).values(key=key, value=value, updated_by=updated_by,
                                       updated_at=datetime.now(UTC))
    conn.execute(statement.on_conflict_do_update(
        index_elements=[control.c.key],
        set_={name: statement.excluded[name] for name in ("value", "updated_by", "updated_at")},
    ))


def set_control(engine: Engine, key: str, value: Any, actor: Actor) -> None:
    """Upsert one value; admins only (checked here, not only by the page)."""
    require_admin(actor, f"change {key}")
    old = get_control(engine, key)
    with engine.begin() as conn:
        put_control(conn, key, value, actor.name)
    write_audit(engine, action=CONTROL_ACTION, success=True, resource_type="MODEL_SYNC_CONTROL",
                resource_id=key, new_values={"value": value},
                metadata={"actor": actor.name, "old": old})


# --- per-model policies (pins, protected fields) ---------------------------------------------

policies_table = sa.Table(
    "model_sync_policies",
    metadata,
    sa.Column("model_id", sa.String(255), primary_key=True),
    sa.Column("pinned", sa.Boolean, nullable=False),
    sa.Column("protected_fields", JSONDocument, nullable=False),
    sa.Column("updated_by", sa.String(255)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)

APPROVALS = "approvals"


def read_policies(conn: sa.Connection) -> dict[str, ModelPolicy]:
    """Every model's policy (one SELECT); models without a row have the default policy."""
    found = {}
    for model_id, pinned, fields in conn.execute(
        sa.select(
            policies_table.c.model_id, policies_table.c.pinned, policies_table.c.protected_fields
        )
    ):
        fields = orjson.loads(fields) if isinstance(fields, str | bytes) else fields
        policy = ModelPolicy(bool(pinned), frozenset(fields or ()))
        if policy != ModelPolicy():
            found[model_id] = policy
    return found


def set_policy(engine: Engine, model_id: str, policy: ModelPolicy, actor: Actor) -> None:
    """Pin / protect a model; admins only."""
    require_admin(actor, "pin models or protect fields")
    fields = sorted(normalise_fields(policy.protected_fields))
    values = {
        "pinned": policy.pinned,
        "protected_fields": fields,
        "updated_by": actor.name,
        "updated_at": datetime.now(UTC),
    }
    with engine.begin() as conn:
        if not conn.execute(
            sa.update(policies_table).where(policies_table.c.model_id == model_id).values(**values)
        ).rowcount:
            conn.execute(sa.insert(policies_table).values(model_id=model_id, **values))
    write_audit(engine, action=POLICY_ACTION, success=True, resource_type="MODEL",
                resource_id=model_id, new_values=policy.as_dict(),
                metadata={"actor": actor.name})


def approvals(engine: Engine) -> frozenset[str]:
    return frozenset(get_control(engine, APPROVALS, []) or [])


def approve(engine: Engine, keys: list[str], actor: Actor) -> None:
    """Approve suspicious changes (``policy.approval_key``s) for scheduled syncs; admins only."""
    set_control(engine, APPROVALS, sorted(approvals(engine) | set(keys)), actor)
