"""Entries an earlier sync mapped, recognised by their bytes: a re-sync maps only what changed.

After every applied sync the service records, for each row it took from an entry of LiteLLM's
answer: the entry's digest, the row's name and deployment id, a hash of the row's synced
signature and its description. The next sync recognises those entries by digest while it splits
the answer (``entry_split``) and neither parses nor maps them. Before planning, each is resolved
against the database: when the row there still has the recorded signature, it holds exactly the
values mapping the entry would give (with the recorded description), so it stands in for the
mapped row; otherwise the entry is parsed and mapped after all. So an admin's edit, a restore
or a failed sync can never make a recognised entry wrong, only slower.

The record names the mapping code that made it (a hash of ``mapping.py`` and ``redact.py``):
after an upgrade that changes the mapping rules, every entry is mapped again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import sys
from collections.abc import Mapping
from pathlib import Path

import orjson
import sqlalchemy as sa

from . import mapping, redact
from .control import control, put_control
from .mapping import (
    SKIP_DATA_ERROR,
    MappedCatalogue,
    ModelDataError,
    ModelRow,
    Prior,
    Skip,
    map_entry,
)
from .plan import SyncPlan, synced_digest

log = logging.getLogger("sync_core.known_entries")
STATE_KEY = "sync.known_entries"
#: The mapping rules the record was made with: our code and what it leans on (Python's
#: Decimal and URL parsing, orjson's number formatting).
MAPPING_CODE = hashlib.sha256(
    b"".join(Path(m.__file__).read_bytes() for m in (mapping, redact))
    + f"{sys.version}|{orjson.__version__}".encode()).hexdigest()[:16]


def _recorded(digest: bytes) -> str:
    return digest.hex()[:32]


def load(conn: sa.Connection) -> dict[str, Prior]:
    """The entries the last applied sync recorded, by digest (none after a mapping change, or
    when the record cannot be read: then every entry is simply mapped)."""
    row = conn.execute(sa.select(control.c.value).where(control.c.key == STATE_KEY)).first()
    if row is None:
        return {}
    try:
        state = orjson.loads(row[0]) if isinstance(row[0], str | bytes) else row[0]
        if not isinstance(state, dict) or state.get("mapping") != MAPPING_CODE:
            return {}
        return {digest: Prior(model_id, deployment, signature, description)
                for digest, model_id, deployment, signature, description
                in orjson.loads(state["entries"])}
    except (KeyError, TypeError, ValueError):  # (orjson's decode error is a ValueError)
        log.warning("the record of known entries is unreadable; mapping every entry")
        return {}


def resolve(catalogue: MappedCatalogue, current: Mapping[str, ModelRow]) -> MappedCatalogue:
    """The catalogue with every recognised entry's row: the database's, when it still has the
    recorded signature, else the entry mapped now."""
    if not catalogue.deferred:
        return catalogue
    rows = dict(catalogue.rows)
    skips = list(catalogue.skips)
    digests = dict(catalogue.synced_digests)
    for name, deferred in catalogue.deferred.items():
        prior, row = deferred.prior, current.get(name)
        if row is not None:
            digest = synced_digest(row)
            if _recorded(digest) == prior.signature:
                if row.description != prior.description:
                    row = dataclasses.replace(row, description=prior.description)
                rows[name] = row
                digests[id(row)] = digest  # (only rows this catalogue holds: ids stay theirs)
                continue
        try:
            rows[name] = map_entry(orjson.loads(deferred.raw))
        except (ModelDataError, orjson.JSONDecodeError) as exc:  # it mapped last time; still
            skips.append(Skip(name, SKIP_DATA_ERROR, str(exc), prior.deployment_id))
    return dataclasses.replace(catalogue, rows=rows, skips=tuple(skips), deferred={},
                               synced_digests=digests)


def record(conn: sa.Connection, catalogue: MappedCatalogue, plan: SyncPlan,
           loaded: Mapping[str, Prior]) -> None:
    """Inside the sync's transaction: what the next sync may recognise. Written only when it
    differs from what this sync loaded (a re-sync with few changes rewrites one row)."""
    priors: dict[str, Prior] = {}
    for name, (digest, deployment) in catalogue.entry_digests.items():
        row = catalogue.rows.get(name)
        if row is not None:
            priors[digest] = Prior(name, deployment, _recorded(plan.desired_digests[name]),
                                   row.description)
    if priors == loaded:
        return
    state = {
        "mapping": MAPPING_CODE,
        # one JSON text, not 50,000 JSON values: the database stores it without parsing it
        "entries": orjson.dumps([[digest, p.model_id, p.deployment_id, p.signature,
                                  p.description] for digest, p in priors.items()]).decode(),
    }
    put_control(conn, STATE_KEY, state, "sync")
