"""Control state every replica reads: small JSON values by key, changed by admins only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .access import Actor, require_admin
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


def get_control(engine: Engine, key: str, default: Any = None) -> Any:
    with engine.connect() as conn:
        row = conn.execute(sa.select(control.c.value).where(control.c.key == key)).first()
    if row is None:
        return default
    value = row[0]
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def set_control(engine: Engine, key: str, value: Any, actor: Actor) -> None:
    """Upsert one value; admins only (checked here, not only by the page)."""
    require_admin(actor, f"change {key}")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        updated = conn.execute(
            sa.update(control).where(control.c.key == key)
            .values(value=value, updated_by=actor.name, updated_at=now)
        ).rowcount
        if not updated:
            conn.execute(sa.insert(control).values(key=key, value=value, updated_by=actor.name,
                                                   updated_at=now))
