"""Admin policy the plan obeys: pins, protected fields, selective sync, suspicious changes.

Pure: no I/O, no SQLAlchemy, no requests, no streamlit. The values here are inputs of
``build_plan`` (and part of its fingerprint); where they are stored is ``policy_store``'s job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .mapping import SYNCED_FIELDS

#: Fields an admin may protect from being overwritten by a sync.
PROTECTABLE_FIELDS = tuple(f for f in SYNCED_FIELDS if f not in ("availability", "metadata"))
PRICE_FIELDS = ("input_cost_per_token", "output_cost_per_token")
#: A price moving by more than this factor (either way) is suspicious.
PRICE_FACTOR = Decimal(10)


@dataclass(frozen=True)
class ModelPolicy:
    """One model's admin settings: pinned models are never marked unavailable; protected fields
    are never overwritten by a sync."""

    pinned: bool = False
    protected_fields: frozenset[str] = frozenset()

    def as_dict(self) -> dict[str, Any]:
        return {"pinned": self.pinned, "protected": sorted(self.protected_fields)}


@dataclass(frozen=True)
class Selection:
    """Which models a sync may touch. Empty means everything."""

    providers: frozenset[str] = frozenset()
    patterns: tuple[str, ...] = ()
    #: Hand-picked model ids ("apply only these"); None means no hand-picking.
    only: frozenset[str] | None = None
    _compiled: tuple[re.Pattern[str], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", tuple(re.compile(p) for p in self.patterns))

    @property
    def is_everything(self) -> bool:
        return not self.providers and not self.patterns and self.only is None

    def includes(self, model_id: str, provider: str | None) -> bool:
        if self.only is not None and model_id not in self.only:
            return False
        if self.providers and (provider or "").lower() not in self.providers:
            return False
        return not self._compiled or any(p.search(model_id) for p in self._compiled)

    def as_dict(self) -> dict[str, Any]:
        return {
            "providers": sorted(self.providers),
            "patterns": list(self.patterns),
            "only": None if self.only is None else sorted(self.only),
        }


def suspicious_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, str]:
    """Field → why a change looks wrong: a positive price becoming null or 0, a price moving more
    than 10×, a context length shrinking by more than half."""
    flags: dict[str, str] = {}
    for name in PRICE_FIELDS:
        before, after = old.get(name), new.get(name)
        if before is None or before == after or before <= 0:
            continue
        if after is None or after == 0:
            flags[name] = f"a positive price ({before}) becomes {after}"
        elif after > before * PRICE_FACTOR or after * PRICE_FACTOR < before:
            flags[name] = f"the price moves more than 10× ({before} → {after})"
    before, after = old.get("context_length"), new.get("context_length")
    if before and after is not None and after * 2 < before:
        flags["context_length"] = (
            f"the context length shrinks by more than half ({before} → {after})"
        )
    return flags


def approval_key(model_id: str, field_name: str, new_value: Any) -> str:
    """What an admin approves: this field of this model taking exactly this value."""
    return f"{model_id}\x1f{field_name}\x1f{new_value}"


def policies_digest(policies: Mapping[str, ModelPolicy]) -> list[Any]:
    return [[k, policies[k].as_dict()] for k in sorted(policies)]


def normalise_fields(fields: Iterable[str]) -> frozenset[str]:
    unknown = set(fields) - set(PROTECTABLE_FIELDS)
    if unknown:
        raise ValueError(f"cannot protect {sorted(unknown)}; protectable: {PROTECTABLE_FIELDS}")
    return frozenset(fields)
