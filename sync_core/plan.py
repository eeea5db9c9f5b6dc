"""The plan: what a sync would change, computed without touching anything.

Pure: no I/O, no SQLAlchemy, no requests, no streamlit. ``build_plan`` compares the mapped
catalogue with the current rows and returns a frozen :class:`SyncPlan` — one action per model,
field-level changes, a summary and a fingerprint of both inputs and the options, so a reviewed
plan can be applied only against the state it was computed from.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from .mapping import SYNCED_FIELDS, MappedCatalogue, ModelDataError, ModelRow, Skip, map_entry

INSERT = "insert"
UPDATE = "update"
MARK_UNAVAILABLE = "mark_unavailable"
RESTORE = "restore"
UNCHANGED = "unchanged"
SKIP = "skip"
ACTIONS = (INSERT, UPDATE, MARK_UNAVAILABLE, RESTORE, UNCHANGED, SKIP)
#: Actions that write to the database.
WRITING_ACTIONS = frozenset({INSERT, UPDATE, MARK_UNAVAILABLE, RESTORE})

AVAILABLE = "available"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class SyncOptions:
    """What the admin asked for. Part of the fingerprint: a plan is reviewed with its options."""

    force_update: bool = False
    mark_unavailable: bool = True
    conflict_resolution: str = "litellm_wins"
    #: Let an empty catalogue mark every available model unavailable (explicit admin override).
    allow_empty_catalogue: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "forceUpdate": self.force_update,
            "markUnavailable": self.mark_unavailable,
            "conflictResolution": self.conflict_resolution,
            "allowEmptyCatalogue": self.allow_empty_catalogue,
        }


@dataclass(frozen=True, slots=True)
class FieldChange:
    old: Any
    new: Any


@dataclass(frozen=True)
class PlanAction:
    """One model's fate. ``desired`` is the mapped LiteLLM row, ``current`` the database row."""

    model_id: str
    action: str
    changes: Mapping[str, FieldChange] = field(default_factory=dict)
    reason: str | None = None
    desired: ModelRow | None = None
    current: ModelRow | None = None
    #: The row as the sync leaves it (inserts and rewrites write exactly this).
    target: ModelRow | None = None
    #: merge mode: fields both the admin and LiteLLM changed (old = database, new = LiteLLM).
    conflicts: Mapping[str, FieldChange] = field(default_factory=dict)

    @property
    def is_destructive(self) -> bool:
        """Taking a model away from users needs the admin's explicit allowance."""
        return self.action == MARK_UNAVAILABLE


@dataclass(frozen=True)
class SyncPlan:
    actions: tuple[PlanAction, ...]
    summary: Mapping[str, int]
    fingerprint: str
    options: SyncOptions
    entry_count: int
    #: Things an admin should know before applying (guards are enforced by the sync service).
    warnings: tuple[str, ...] = ()

    @property
    def has_changes(self) -> bool:
        return any(self.summary[a] for a in WRITING_ACTIONS)

    def by_action(self, action: str) -> list[PlanAction]:
        return [a for a in self.actions if a.action == action]

    @property
    def errors(self) -> list[PlanAction]:
        return [
            a
            for a in self.actions
            if a.action == SKIP and a.reason and a.reason.startswith("data_error")
        ]


# --- comparison and fingerprint ----------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def row_signature(row: ModelRow) -> bytes:
    """Every value the sync compares, plus description, as canonical bytes."""
    values = [row.id, row.description] + [
        row.value(name) if name != "metadata" else None for name in SYNCED_FIELDS
    ]
    return orjson.dumps(values, default=_json_default) + row.metadata_json


def _digest(parts: list[bytes]) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.hexdigest()


def fingerprint(
    catalogue: MappedCatalogue, current: Mapping[str, ModelRow], options: SyncOptions
) -> str:
    """Hash of the mapped catalogue, the current rows and the options, independent of order."""
    catalogue_part = _digest(
        [row_signature(catalogue.rows[k]) for k in sorted(catalogue.rows)]
        + [
            orjson.dumps([s.model_id, s.kind, s.reason, s.deployment_id])
            for s in sorted(
                catalogue.skips, key=lambda s: (s.model_id, s.kind, s.deployment_id or "")
            )
        ]
    )
    database_part = _digest([row_signature(current[k]) for k in sorted(current)])
    options_part = orjson.dumps(options.as_dict(), option=orjson.OPT_SORT_KEYS)
    return _digest([catalogue_part.encode(), database_part.encode(), options_part])


def _field_changes(current: ModelRow, target: ModelRow) -> dict[str, FieldChange]:
    changes: dict[str, FieldChange] = {}
    for name in SYNCED_FIELDS:
        if current.value(name) != target.value(name):
            if name == "metadata":
                changes[name] = FieldChange(current.metadata, target.metadata)
            else:
                changes[name] = FieldChange(getattr(current, name), getattr(target, name))
    if current.description != target.description:
        changes["description"] = FieldChange(current.description, target.description)
    return changes


def merge_base(current: ModelRow) -> ModelRow | None:
    """The LiteLLM values last synced into this row, re-mapped from its stored metadata."""
    info = current.metadata.get("litellm_model_info")
    params = current.metadata.get("litellm_params")
    if not isinstance(info, Mapping) or not isinstance(params, Mapping):
        return None
    try:
        return map_entry({"model_name": current.id, "litellm_params": params, "model_info": info})
    except ModelDataError:
        return None


_MERGED_FIELDS = tuple(f for f in SYNCED_FIELDS if f not in ("availability", "metadata"))


def _target_row(
    current: ModelRow, desired: ModelRow, mode: str
) -> tuple[ModelRow, dict[str, FieldChange]]:
    """The row as the sync will leave it, and the fields both sides changed (merge only).

    ``litellm_wins``: LiteLLM's values. ``database_wins``: the row as it is, made available.
    ``merge``: three-way against the last synced LiteLLM values (kept in metadata): a field only
    the admin changed is kept, a field only LiteLLM changed is taken, a field both changed is a
    conflict, kept as the admin left it and reported. The description stays admin-owned.
    """
    description = current.description if current.description is not None else desired.description
    if mode == "database_wins":
        return dataclasses.replace(current, availability=AVAILABLE), {}
    base = merge_base(current) if mode == "merge" else None
    if base is None:
        return dataclasses.replace(desired, description=description), {}
    values: dict[str, Any] = {}
    conflicts: dict[str, FieldChange] = {}
    for name in _MERGED_FIELDS:
        mine, theirs, before = getattr(current, name), getattr(desired, name), getattr(base, name)
        if mine in (theirs, before):
            values[name] = theirs
        elif theirs == before:
            values[name] = mine
        else:
            values[name] = mine
            conflicts[name] = FieldChange(mine, theirs)
    merged = dataclasses.replace(desired, description=description, **values)
    return merged, conflicts


def _present_action(current: ModelRow, desired: ModelRow, options: SyncOptions) -> PlanAction:
    model_id = desired.id
    target, conflicts = _target_row(current, desired, options.conflict_resolution)
    changes = _field_changes(current, target)
    if current.availability != AVAILABLE:
        return PlanAction(
            model_id,
            RESTORE,
            changes,
            "served again by LiteLLM",
            desired,
            current,
            target,
            conflicts,
        )
    if changes:
        return PlanAction(model_id, UPDATE, changes, None, desired, current, target, conflicts)
    if options.force_update and options.conflict_resolution != "database_wins":
        return PlanAction(
            model_id,
            UPDATE,
            {},
            "forceUpdate: rewritten although unchanged",
            desired,
            current,
            target,
            conflicts,
        )
    reason = (
        "database_wins: existing rows are kept"
        if (options.conflict_resolution == "database_wins" and _field_changes(current, desired))
        else None
    )
    return PlanAction(model_id, UNCHANGED, {}, reason, desired, current, target, conflicts)


def _skip_action(skip: Skip) -> PlanAction:
    detail = f" (deployment {skip.deployment_id})" if skip.deployment_id else ""
    return PlanAction(skip.model_id, SKIP, {}, f"{skip.kind}: {skip.reason}{detail}")


def build_plan(
    catalogue: MappedCatalogue,
    current: Mapping[str, ModelRow],
    options: SyncOptions | None = None,
) -> SyncPlan:
    """Compare the desired rows with the current ones; the result is frozen and writes nothing."""
    options = options or SyncOptions()
    actions: list[PlanAction] = []
    for model_id in sorted(catalogue.rows):
        desired = catalogue.rows[model_id]
        existing = current.get(model_id)
        if existing is None:
            actions.append(PlanAction(model_id, INSERT, {}, None, desired, None, desired))
        else:
            actions.append(_present_action(existing, desired, options))

    rejected = catalogue.rejected_ids
    for model_id in sorted(set(current) - set(catalogue.rows)):
        row = current[model_id]
        if row.availability == AVAILABLE and model_id in rejected:
            actions.append(
                PlanAction(
                    model_id,
                    UNCHANGED,
                    {},
                    "LiteLLM still serves it, but its entry has a data error: left as it is",
                    None,
                    row,
                )
            )
        elif row.availability == AVAILABLE and options.mark_unavailable:
            change = {"availability": FieldChange(AVAILABLE, UNAVAILABLE)}
            actions.append(
                PlanAction(
                    model_id, MARK_UNAVAILABLE, change, "no longer served by LiteLLM", None, row
                )
            )
        else:
            reason = (
                "no longer served by LiteLLM; markUnavailable is off"
                if row.availability == AVAILABLE
                else "not served by LiteLLM"
            )
            actions.append(PlanAction(model_id, UNCHANGED, {}, reason, None, row))
    actions.extend(_skip_action(s) for s in catalogue.skips)

    summary = {name: 0 for name in ACTIONS}
    for action in actions:
        summary[action.action] += 1

    warnings: list[str] = []
    available_now = sum(1 for row in current.values() if row.availability == AVAILABLE)
    if not catalogue.rows and summary[MARK_UNAVAILABLE] and available_now:
        warnings.append(
            f"LiteLLM returned no usable models: this would mark all {available_now} available "
            "models unavailable"
        )
    return SyncPlan(
        actions=tuple(actions),
        summary=summary,
        fingerprint=fingerprint(catalogue, current, options),
        options=options,
        entry_count=catalogue.entry_count,
        warnings=tuple(warnings),
    )


# --- rendering for machines ---------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, tuple):
        return list(value)
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
                    name: {"old": _jsonable(c.old), "new": _jsonable(c.new)}
                    for name, c in a.changes.items()
                },
                "reason": a.reason,
                **(
                    {
                        "conflicts": {
                            name: {"database": _jsonable(c.old), "litellm": _jsonable(c.new)}
                            for name, c in a.conflicts.items()
                        }
                    }
                    if a.conflicts
                    else {}
                ),
            }
            for a in plan.actions
            if include_unchanged or a.action != UNCHANGED
        ],
    }
