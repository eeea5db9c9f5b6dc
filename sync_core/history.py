"""Per-model change history: what each sync changed, model by model, field by field.

After a successful sync, a ``MODEL_CHANGES`` audit row lists every written model with its
changed fields (old → new) and the model counts; a model's timeline and the "available vs
unavailable over time" chart are read from those rows. Recorded by a sync listener, after the
sync committed, so history can never fail or slow a sync.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from . import audit
from .mapping import SYNCED_FIELDS
from .plan import DELETE, WRITING_ACTIONS
from .plan_render import jsonable
from .store import model_counts
from .sync import SyncResult

log = logging.getLogger("sync_core.history")

CHANGES_ACTION = "MODEL_CHANGES"
#: Models listed in one MODEL_CHANGES row; the count is always complete.
MAX_RECORDED_CHANGES = 5000


def changes_of(result: SyncResult, limit: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """Per-model writes of a sync, field by field (metadata reported as changed, not copied):
    the first ``limit`` of them, and how many there are."""
    if result.plan is None:
        return [], 0
    out: list[dict[str, Any]] = []
    count = 0
    for action in result.plan.actions:
        if action.action not in WRITING_ACTIONS:
            continue
        count += 1
        if limit is not None and len(out) >= limit:
            continue  # counted, not described: only the first ``limit`` are recorded
        fields = {
            name: (
                {"old": "…", "new": "… (raw LiteLLM data changed)"}
                if name == "metadata"
                else {"old": jsonable(c.old), "new": jsonable(c.new)}
            )
            for name, c in action.changes.items()
        }
        if action.action == DELETE and action.current is not None:  # keep what was deleted
            fields = {
                name: {"old": jsonable(getattr(action.current, name)), "new": None}
                for name in SYNCED_FIELDS
                if name != "metadata"
            }
        out.append(
            {
                "model_id": action.model_id,
                "action": action.action,
                "fields": fields,
                "reason": action.reason,
            }
        )
    return out, count


def record_changes(engine: Engine, result: SyncResult) -> str | None:
    """Write the MODEL_CHANGES row of a successful sync (its own transaction, after commit)."""
    if not result.success:
        return None
    changes, count = changes_of(result, MAX_RECORDED_CHANGES)
    if not count:  # a sync that changed nothing adds no history (and pushes none out)
        return None
    with engine.connect() as conn:
        counts = model_counts(conn)
    return audit.write_audit(
        engine,
        action=CHANGES_ACTION,
        success=True,
        resource_id=result.audit_id,
        metadata={
            "syncAuditId": result.audit_id,
            "trigger": result.trigger,
            "actor": result.actor,
            "changeCount": count,
            "truncated": count > len(changes),
            "changes": changes,
            "modelCounts": counts,
        },
    )


def change_recorder(engine: Engine) -> Callable[[SyncResult], None]:
    """A ``SyncService(on_finished=…)`` listener that records per-model changes."""

    def listener(result: SyncResult) -> None:
        try:
            record_changes(engine, result)
        except sa.exc.SQLAlchemyError as exc:  # history is a convenience; the sync committed
            log.warning("could not record model changes: %s", type(exc).__name__)

    return listener


def model_history(engine: Engine, model_id: str, *, scan: int = 500) -> list[dict[str, Any]]:
    """The model's changes, newest first, from the last ``scan`` MODEL_CHANGES rows."""
    history = []
    for row in audit.list_audit(engine, action=CHANGES_ACTION, limit=scan):
        for change in row["metadata"].get("changes", []):
            if change.get("model_id") == model_id:
                history.append(
                    {
                        "at": row["created_at"],
                        "action": change["action"],
                        "fields": change.get("fields", {}),
                        "actor": row["metadata"].get("actor"),
                        "trigger": row["metadata"].get("trigger"),
                    }
                )
    return history
