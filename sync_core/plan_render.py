"""The plan rendered for machines: ``diff --json``, the API and the Diff page's download.

Decimals become exact strings, tuples lists, times ISO text; unchanged models may be left out,
as DESIGN.md's ``diff --json`` shape allows.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from .plan import UNCHANGED, SyncPlan


def jsonable(value: Any) -> Any:
    """A field value for JSON: decimals as exact strings, tuples as lists, times in ISO form."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def plan_to_dict(plan: SyncPlan, *, include_unchanged: bool = False) -> dict[str, Any]:
    """The ``diff --json`` shape of DESIGN.md (decimals as exact strings)."""
    return {
        "fingerprint": plan.fingerprint,
        "summary": dict(plan.summary),
        "options": plan.options.as_dict(),
        "totalEntries": plan.entry_count,
        "warnings": list(plan.warnings),
        "actions": [
            {
                "model_id": a.model_id,
                "action": a.action,
                "changes": {
                    name: {"old": jsonable(c.old), "new": jsonable(c.new)}
                    for name, c in a.changes.items()
                },
                "reason": a.reason,
                **(
                    {
                        "conflicts": {
                            name: {"database": jsonable(c.old), "litellm": jsonable(c.new)}
                            for name, c in a.conflicts.items()
                        }
                    }
                    if a.conflicts
                    else {}
                ),
                **({"held": dict(a.held)} if a.held else {}),
                **({"flags": dict(a.flags)} if a.flags else {}),
            }
            for a in plan.actions
            if include_unchanged or a.action != UNCHANGED
        ],
    }
