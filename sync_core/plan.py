"""The plan: what a sync would change, computed without touching anything.

Pure: no I/O, no SQLAlchemy, no requests, no streamlit. ``build_plan`` compares the mapped
catalogue with the current rows and returns a frozen :class:`SyncPlan` — one action per model,
field-level changes, a summary and a fingerprint of both inputs and the options, so a reviewed
plan can be applied only against the state it was computed from.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

import orjson

from .mapping import (
    SYNCED_FIELDS,
    KnownRow,
    MappedCatalogue,
    ModelDataError,
    ModelRow,
    Skip,
    features_for,
    map_entry,
)
from .policy import ModelPolicy, Selection, approval_key, policies_digest, suspicious_changes

INSERT = "insert"
UPDATE = "update"
MARK_UNAVAILABLE = "mark_unavailable"
RESTORE = "restore"
UNCHANGED = "unchanged"
SKIP = "skip"
#: Retention only (``retention_days``): a model unavailable for longer is deleted.
DELETE = "delete"
ACTIONS = (INSERT, UPDATE, MARK_UNAVAILABLE, RESTORE, UNCHANGED, SKIP, DELETE)
#: Actions that write to the database.
WRITING_ACTIONS = frozenset({INSERT, UPDATE, MARK_UNAVAILABLE, RESTORE, DELETE})

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
    #: Which models this sync may touch (providers, name patterns, hand-picked ids).
    selection: Selection = field(default_factory=Selection)
    #: Keep suspicious changes back unless approved (scheduled syncs).
    hold_suspicious: bool = False
    #: ``policy.approval_key``s of suspicious changes an admin approved.
    approvals: frozenset[str] = frozenset()
    #: Delete models unavailable for longer than this many days (None: keep them forever).
    retention_days: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "forceUpdate": self.force_update,
            "markUnavailable": self.mark_unavailable,
            "conflictResolution": self.conflict_resolution,
            "allowEmptyCatalogue": self.allow_empty_catalogue,
            "selection": self.selection.as_dict(),
            "holdSuspicious": self.hold_suspicious,
            "approvals": sorted(self.approvals),
            "retentionDays": self.retention_days,
        }


@dataclass(frozen=True, slots=True)
class FieldChange:
    old: Any
    new: Any


#: The shared empty mapping of actions without changes (most of a re-sync's 10,000 actions).
NOTHING: Mapping[str, Any] = MappingProxyType({})


@dataclass(slots=True)  # (not frozen: a plan makes one per model, and a frozen dataclass's
class PlanAction:        # __init__ costs 4.5× as much, 12 ms for 10,000; never modified)
    """One model's fate. ``desired`` is the mapped LiteLLM row, ``current`` the database row."""

    model_id: str
    action: str
    changes: Mapping[str, FieldChange] = field(default_factory=dict)
    reason: str | None = None
    desired: ModelRow | KnownRow | None = None
    current: ModelRow | KnownRow | None = None
    #: The row as the sync leaves it (inserts and rewrites write exactly this). A
    #: :class:`KnownRow` only in unchanged actions of a sync's plan, never a preview's.
    target: ModelRow | KnownRow | None = None
    #: merge mode: fields both the admin and LiteLLM changed (old = database, new = LiteLLM).
    conflicts: Mapping[str, FieldChange] = field(default_factory=dict)
    #: Changes LiteLLM has that this sync does not apply, and why (protected, suspicious).
    held: Mapping[str, str] = field(default_factory=dict)
    #: Suspicious changes (field → why), applied or held.
    flags: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_destructive(self) -> bool:
        """Taking a model away from users needs the admin's explicit allowance."""
        return self.action in (MARK_UNAVAILABLE, DELETE)


@dataclass(frozen=True)
class SyncPlan:
    actions: tuple[PlanAction, ...]
    summary: Mapping[str, int]
    fingerprint: str
    options: SyncOptions
    entry_count: int
    #: Things an admin should know before applying (guards are enforced by the sync service).
    warnings: tuple[str, ...] = ()
    #: What each toggle does in this plan, so a page need not plan three more times:
    #: ``force_update`` → present models it rewrites although unchanged; ``mark_unavailable``
    #: → models it marks unavailable (whether or not the option is on).
    option_effects: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Each desired row's :func:`synced_digest`, by model id (what ``known_entries`` records).
    desired_digests: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    #: Models whose row, once the plan is applied, holds exactly the desired synced values and
    #: is not due a description fill: model id → that row's description (``known_entries``).
    settled: Mapping[str, str | None] = field(default_factory=dict, repr=False)

    @property
    def has_changes(self) -> bool:
        return any(self.summary.get(a) for a in WRITING_ACTIONS)

    def by_action(self, action: str) -> list[PlanAction]:
        return [a for a in self.actions if a.action == action]

    def approval_keys(self, models: Iterable[str] | None = None) -> list[tuple[str, str, str]]:
        """(model, field, ``policy.approval_key``) of every suspicious change in the plan, for
        the models given (all when None): what an admin approves for scheduled syncs."""
        wanted = None if models is None else set(models)
        return [
            (a.model_id, name, approval_key(a.model_id, name, getattr(a.target, name)))
            for a in self.actions
            if a.flags and a.target is not None and (wanted is None or a.model_id in wanted)
            for name in a.flags
        ]

    @property
    def errors(self) -> list[PlanAction]:
        return [
            a
            for a in self.actions
            if a.action == SKIP and a.reason and a.reason.startswith("data_error")
        ]


# --- comparison and fingerprint ----------------------------------------------------------------


def synced_digest(row: ModelRow | KnownRow) -> bytes:
    """SHA-256 of every value the sync compares (``SYNCED_FIELDS``) in canonical form: equal
    digests mean nothing to write. Spelled out field by field (costs as exact decimal text)
    because it runs for every row of every sync. A :class:`KnownRow` carries its own."""
    if type(row) is KnownRow:
        return row.digest
    cost_in, cost_out = row.input_cost_per_token, row.output_cost_per_token
    hasher = hashlib.sha256(orjson.dumps((
        row.id, row.name, row.provider, row.context_length,
        None if cost_in is None else str(cost_in), None if cost_out is None else str(cost_out),
        row.supports_vision, row.supports_function_calling,
        row.supports_parallel_function_calling, row.supports_tool_choice,
        row.supports_streaming, row.features, row.availability,
    )))
    hasher.update(row.metadata_json)
    return hasher.digest()


def _digest_of(row: ModelRow, digests: dict[int, bytes]) -> bytes:
    """The row's synced digest, computed once per row object (``digests`` is by ``id(row)``)."""
    found = digests.get(id(row))
    if found is None:
        found = digests[id(row)] = synced_digest(row)
    return found


def _digest(parts: list[bytes]) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.hexdigest()


def fingerprint(
    catalogue: MappedCatalogue,
    current: Mapping[str, ModelRow | KnownRow],
    options: SyncOptions,
    extra: Any = None,
    digests: dict[int, bytes] | None = None,
) -> str:
    """Hash of the mapped catalogue, the current rows and the options, independent of order.
    ``digests`` (by ``id(row)``) holds the synced digests already computed, and gets the rest."""
    known = {} if digests is None else digests

    def signatures(rows: Mapping[str, ModelRow | KnownRow]) -> list[bytes]:
        """The rows' synced values (fixed-size digests, which include the id) and their
        admin-owned descriptions, in id order: two parts, not two per row."""
        ordered = [rows[k] for k in sorted(rows)]
        return [b"".join([row.digest if type(row) is KnownRow else _digest_of(row, known)
                          for row in ordered]),
                orjson.dumps([row.description for row in ordered])]

    catalogue_part = _digest(
        signatures(catalogue.rows)
        + [
            orjson.dumps([s.model_id, s.kind, s.reason, s.deployment_id])
            for s in sorted(
                catalogue.skips, key=lambda s: (s.model_id, s.kind, s.deployment_id or "")
            )
        ]
    )
    database_part = _digest(signatures(current))
    options_part = orjson.dumps([options.as_dict(), extra], option=orjson.OPT_SORT_KEYS)
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


_MERGED_FIELDS = tuple(
    f for f in SYNCED_FIELDS if f not in ("availability", "metadata", "features")
)


def _with_features(row: ModelRow) -> ModelRow:
    """``features`` always follows the capability flags (mapping rule), whatever was merged."""
    features = features_for(
        row.supports_function_calling, row.supports_parallel_function_calling, row.supports_vision
    )
    return row if features == row.features else dataclasses.replace(row, features=features)


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
    return _with_features(merged), conflicts


def _apply_policy(
    current: ModelRow, target: ModelRow, policy: ModelPolicy, options: SyncOptions
) -> tuple[ModelRow, dict[str, str], dict[str, str]]:
    """Keep protected fields, and suspicious changes a scheduled sync may not make alone."""
    held: dict[str, str] = {}
    keep: dict[str, Any] = {}
    for name in policy.protected_fields:
        if getattr(target, name) != getattr(current, name):
            held[name] = "protected by an admin"
            keep[name] = getattr(current, name)
    candidate = {n: getattr(target, n) for n in ("input_cost_per_token", "output_cost_per_token",
                                                  "context_length") if n not in keep}
    flags = suspicious_changes({n: getattr(current, n) for n in candidate}, candidate)
    if options.hold_suspicious:
        for name, why in flags.items():
            if approval_key(current.id, name, candidate[name]) not in options.approvals:
                held[name] = f"suspicious ({why}): held until an admin approves"
                keep[name] = getattr(current, name)
    if not keep:
        return target, held, flags
    target = dataclasses.replace(target, **keep)
    return (target if "features" in keep else _with_features(target)), held, flags


def _present_action(
    current: ModelRow, desired: ModelRow, options: SyncOptions, policy: ModelPolicy
) -> PlanAction:
    model_id = desired.id
    target, conflicts = _target_row(current, desired, options.conflict_resolution)
    target, held, flags = _apply_policy(current, target, policy, options)
    changes = _field_changes(current, target)
    extra = {"conflicts": conflicts, "held": held, "flags": flags}
    if current.availability != AVAILABLE:
        return PlanAction(model_id, RESTORE, changes, "served again by LiteLLM", desired, current,
                          target, **extra)
    if changes:
        return PlanAction(model_id, UPDATE, changes, None, desired, current, target, **extra)
    if options.force_update and options.conflict_resolution != "database_wins":
        return PlanAction(model_id, UPDATE, {}, "forceUpdate: rewritten although unchanged",
                          desired, current, target, **extra)
    reason = (
        "database_wins: existing rows are kept"
        if options.conflict_resolution == "database_wins" and _field_changes(current, desired)
        else None
    )
    return PlanAction(model_id, UNCHANGED, {}, reason, desired, current, target, **extra)


def _skip_action(skip: Skip) -> PlanAction:
    detail = f" (deployment {skip.deployment_id})" if skip.deployment_id else ""
    return PlanAction(skip.model_id, SKIP, {}, f"{skip.kind}: {skip.reason}{detail}")


_MARK_IS_OFF = "no longer served by LiteLLM; markUnavailable is off"


def _same(current: ModelRow, desired: ModelRow, options: SyncOptions,
          digests: dict[int, bytes]) -> bool:
    if options.force_update or (current.description is None and desired.description is not None):
        return False
    return _digest_of(current, digests) == _digest_of(desired, digests)


def _known_same(current: KnownRow, desired: KnownRow, options: SyncOptions,
                digests: dict[int, bytes]) -> bool:
    """:func:`_same` for two known rows, which carry their digests."""
    digests[id(current)], digests[id(desired)] = current.digest, desired.digest
    return not options.force_update and current.digest == desired.digest and not (
        current.description is None and desired.description is not None)


def _absent_action(
    row: ModelRow,
    options: SyncOptions,
    policy: ModelPolicy,
    rejected: frozenset[str],
    expired: bool,
) -> PlanAction:
    """A database row LiteLLM does not serve (or serves with a data error)."""
    model_id = row.id
    if row.availability == AVAILABLE:
        if model_id in rejected:
            return PlanAction(model_id, UNCHANGED, {}, "LiteLLM still serves it, but its entry "
                              "has a data error: left as it is", None, row)
        if not options.mark_unavailable:
            return PlanAction(model_id, UNCHANGED, {}, _MARK_IS_OFF, None, row)
        if policy.pinned:
            return PlanAction(model_id, UNCHANGED, {}, "no longer served by LiteLLM, but pinned: "
                              "never marked unavailable", None, row)
        change = {"availability": FieldChange(AVAILABLE, UNAVAILABLE)}
        return PlanAction(model_id, MARK_UNAVAILABLE, change, "no longer served by LiteLLM",
                          None, row)
    if expired and not policy.pinned:
        change = {"availability": FieldChange(row.availability, None)}
        return PlanAction(model_id, DELETE, change, f"unavailable for more than "
                          f"{options.retention_days} days (retention)", None, row)
    return PlanAction(model_id, UNCHANGED, {}, "not served by LiteLLM", None, row)


def _outside(row: ModelRow | None, desired: ModelRow | None) -> PlanAction:
    model_id = (desired or row).id  # type: ignore[union-attr]
    return PlanAction(model_id, UNCHANGED, {}, "outside this sync's selection", desired, row)


def build_plan(
    catalogue: MappedCatalogue,
    current: Mapping[str, ModelRow | KnownRow],
    options: SyncOptions | None = None,
    *,
    policies: Mapping[str, ModelPolicy] | None = None,
    unavailable_since: Mapping[str, datetime] | None = None,
    now: datetime | None = None,
) -> SyncPlan:
    """Compare the desired rows with the current ones; the result is frozen and writes nothing.

    ``policies`` (pins, protected fields) and ``unavailable_since`` (for retention, judged at
    ``now``) are inputs like the rows: they are part of the fingerprint.
    """
    if catalogue.deferred or catalogue.carried:  # they would look absent: marked unavailable
        raise ValueError("resolve the recognised entries (known_entries.resolve) first")
    options = options or SyncOptions()
    policies = policies or {}
    no_policy = ModelPolicy()
    selection = options.selection
    actions: list[PlanAction] = []
    settled: dict[str, str | None] = {}
    known = catalogue.synced_digests  # (only for rows the catalogue holds: ids stay theirs)
    digests: dict[int, bytes] = {id(row): known[id(row)] for row in catalogue.rows.values()
                                 if id(row) in known}
    everything = selection.is_everything
    for model_id in sorted(catalogue.rows):
        desired = catalogue.rows[model_id]
        existing = current.get(model_id)
        if existing is desired and type(desired) is KnownRow and everything and not (
                options.force_update):  # (a row planned from the record: see below)
            digests[id(desired)] = desired.digest
            actions.append(PlanAction(model_id, UNCHANGED, NOTHING, None, desired, desired,
                                      desired, NOTHING, NOTHING, NOTHING))
            settled[model_id] = desired.description
        elif not everything and not selection.includes(model_id, desired.provider):
            actions.append(_outside(existing, desired))
        elif existing is None:
            actions.append(PlanAction(model_id, INSERT, {}, None, desired, None, desired))
            settled[model_id] = desired.description
        elif (_known_same(existing, desired, options, digests)
              if type(existing) is KnownRow and type(desired) is KnownRow
              else _same(existing, desired, options, digests)):
            # Nothing LiteLLM has differs from the row: unchanged in every conflict mode, with
            # every policy (the common case of a re-sync, so it skips the field-by-field work;
            # rows nobody wrote since the last sync are judged by their recorded digests).
            actions.append(PlanAction(model_id, UNCHANGED, NOTHING, None, desired, existing,
                                      existing, NOTHING, NOTHING, NOTHING))
            settled[model_id] = existing.description
        else:
            action = _present_action(existing, desired, options,
                                     policies.get(model_id, no_policy))
            actions.append(action)
            target = action.target
            if (target is not None and not (target.description is None
                                            and desired.description is not None)
                    and synced_digest(target) == _digest_of(desired, digests)):
                settled[model_id] = target.description

    rejected = catalogue.rejected_ids
    cutoff = (now - timedelta(days=options.retention_days)
              if options.retention_days is not None and now is not None else None)
    since = unavailable_since or {}
    for model_id in sorted(set(current) - set(catalogue.rows)):
        row = current[model_id]
        if not selection.is_everything and not selection.includes(model_id, row.provider):
            actions.append(_outside(row, None))
            continue
        expired = cutoff is not None and model_id in since and since[model_id] < cutoff
        actions.append(_absent_action(row, options, policies.get(model_id, no_policy), rejected,
                                      expired))
    actions.extend(_skip_action(s) for s in catalogue.skips)

    summary = {name: 0 for name in ACTIONS}
    for action in actions:
        summary[action.action] += 1
    if options.retention_days is None:  # DESIGN's six actions, unless retention is on
        del summary[DELETE]

    warnings: list[str] = []
    available_now = sum(1 for row in current.values() if row.availability == AVAILABLE)
    if not catalogue.rows and summary[MARK_UNAVAILABLE] and available_now:
        warnings.append(
            f"LiteLLM returned no usable models: this would mark all {available_now} available "
            "models unavailable"
        )
    forced = tuple(
        a.model_id for a in actions
        if a.current is not None and a.desired is not None and (
            (a.action == UNCHANGED and options.conflict_resolution != "database_wins"
             and a.reason != "outside this sync's selection")
            or (a.action == UPDATE and not a.changes)
        )
    )
    marked = tuple(
        a.model_id for a in actions
        if a.action == MARK_UNAVAILABLE or a.reason == _MARK_IS_OFF
    )
    extra = [policies_digest(policies), sorted(a.model_id for a in actions if a.action == DELETE)]
    return SyncPlan(
        actions=tuple(actions),
        summary=summary,
        fingerprint=fingerprint(catalogue, current, options, extra, digests),
        options=options,
        entry_count=catalogue.entry_count,
        warnings=tuple(warnings),
        option_effects={"force_update": forced, "mark_unavailable": marked},
        desired_digests={k: digests[id(row)] for k, row in catalogue.rows.items()},
        settled=settled,
    )
