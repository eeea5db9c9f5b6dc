"""Entries an earlier sync mapped, recognised by their bytes: a re-sync maps only what changed.

After every applied sync the service records, for each row it took from an entry of LiteLLM's
answer: the entry's digest, the row's name and deployment id, the row's synced digest and its
description, and on PostgreSQL, for a row the sync left holding exactly those values, the row's
version (``xmin``). The next sync recognises those entries by digest while it splits the answer
(``entry_split``) and neither parses nor maps them. Before planning, each is resolved against
the database. A row still at the recorded version was written by nobody since: it is planned
from the record alone, without reading it (:class:`~sync_core.mapping.KnownRow`). Any other row
is read: when it still has the recorded synced digest, it holds exactly the values mapping the
entry would give (with the recorded description), so it stands in for the mapped row; otherwise
the entry is parsed and mapped after all. So an admin's edit, a restore or a failed sync can
never make a recognised entry wrong, only slower. (A version is a 32-bit transaction id: it
could only come back after four billion transactions with the row written by exactly that one,
and PostgreSQL freezes rows long before.)

The record names the code that made it (a hash of ``mapping.py``, ``redact.py``, ``plan.py``
and ``store.py``: the mapping rules, the synced digest and how rows are read back): after an
upgrade that changes any of them, every entry is mapped again. A reviewed plan is applied
without trusting versions (``resolve(trust_versions=False)``), so it is checked against
exactly the rows a preview reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
import sys
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from . import mapping, redact, store
from . import plan as planning
from .control import control, put_control
from .mapping import (
    SKIP_DATA_ERROR,
    Deferred,
    KnownRow,
    MappedCatalogue,
    ModelDataError,
    ModelRow,
    Prior,
    Skip,
    map_entry,
)
from .plan import WRITING_ACTIONS, SyncOptions, SyncPlan, synced_digest
from .store import read_current_rows, row_versions, transaction_version

log = logging.getLogger("sync_core.known_entries")
STATE_KEY = "sync.known_entries"
#: The mapping rules the record was made with: our code and what it leans on (Python's
#: Decimal and URL parsing, orjson's number formatting).
MAPPING_CODE = hashlib.sha256(
    b"".join(Path(m.__file__).read_bytes() for m in (mapping, redact, planning, store))
    + f"{sys.version}|{orjson.__version__}".encode()).hexdigest()[:16]


#: 3: entries identified by XXH3-128 keyed with the record's seed (``entry_split.entry_digest``),
#: by SHA-256 before.
FORMAT = 3


@dataclasses.dataclass(frozen=True)
class Loaded:
    """What the last applied sync recorded: its entries by digest, and the seed the digests
    are keyed with (``entry_split.entry_digest``), random per record and kept in the database,
    so nobody who shapes an entry can aim its digest at another entry's."""

    priors: dict[str, Prior]
    seed: int
    #: The record's lines as stored, in order, and by digest: a line whose entry and row are
    #: as the record left them is written back as it was read.
    lines: list[list[Any]] = dataclasses.field(default_factory=list)
    line_of: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    #: The audit id of the sync that wrote the record: rows planned from it (``KnownRow``) are
    #: as that sync left them, so its snapshot holds them (``snapshots`` stores only the rest).
    audit: str | None = None


def fresh_seed() -> int:
    return secrets.randbits(64)


def load(conn: sa.Connection, *, priors: bool = True) -> Loaded:
    """The entries the last applied sync recorded, by digest (none after a mapping change, or
    when the record cannot be read: then every entry is simply mapped), and its seed (a new
    one when there is no record to keep). ``priors=False``: the seed only (a forced sync
    maps every entry)."""
    row = conn.execute(sa.select(control.c.value).where(control.c.key == STATE_KEY)).first()
    if row is None:
        return Loaded({}, fresh_seed())
    try:
        state = orjson.loads(row[0]) if isinstance(row[0], str | bytes) else row[0]
        if (not isinstance(state, dict) or state.get("mapping") != MAPPING_CODE
                or state.get("format") != FORMAT or type(state.get("seed")) is not int):
            return Loaded({}, fresh_seed())
        if not priors:
            return Loaded({}, state["seed"])
        lines = orjson.loads(state["entries"])
        audit = state.get("audit")
        return Loaded({item[0]: Prior(item[1], item[2], item[3], item[4], item[5],
                                      item[6] if len(item) > 6 else None,
                                      item[7] if len(item) > 7 else item[4])
                       for item in lines}, state["seed"], lines,
                      {item[0]: item for item in lines},
                      audit if type(audit) is str else None)
    except (KeyError, TypeError, ValueError, IndexError):  # (orjson's decode error: ValueError)
        log.warning("the record of known entries is unreadable; mapping every entry")
        return Loaded({}, fresh_seed())


@dataclasses.dataclass(frozen=True)
class Resolved:
    """The catalogue ready to plan, the database rows to plan it against, and (PostgreSQL)
    every row's version as the sync found it."""

    catalogue: MappedCatalogue
    current: dict[str, ModelRow | KnownRow]
    versions: dict[str, str] | None


def resolve(conn: sa.Connection, catalogue: MappedCatalogue, options: SyncOptions, *,
            trust_versions: bool = True) -> Resolved:
    """Read the rows the plan needs and give every recognised entry its row.

    A recognised entry whose row nobody wrote since the last sync left it in step with the
    entry (same version, PostgreSQL) is planned from the record alone (:class:`KnownRow`),
    its row not even read, when such rows are most of the catalogue. Otherwise the row is
    read: when it still has the recorded synced digest, it holds exactly what mapping the entry
    would give (with the recorded description) and stands in for the mapped row; else the
    entry is parsed and mapped after all. ``trust_versions=False`` reads every row (a reviewed
    plan is checked against exactly what a preview reads)."""
    versions = row_versions(conn)
    untouched: dict[str, Deferred] = {}
    if (versions is not None and trust_versions and options.selection.is_everything
            and not options.force_update):
        untouched = {name: d for name, d in catalogue.deferred.items()
                     if d.prior.version is not None and versions.get(name) == d.prior.version
                     # (never recorded so: such a row is due a description fill, so read it)
                     and not (d.prior.stored_description is None
                              and d.prior.description is not None)}
    if versions is not None and len(untouched) * 2 > len(versions):
        current: dict[str, ModelRow | KnownRow] = dict(
            read_current_rows(conn, only=[i for i in versions if i not in untouched]))
    else:
        untouched = {}
        current = dict(read_current_rows(conn))
    if not catalogue.deferred:
        return Resolved(catalogue, current, versions)
    rows: dict[str, ModelRow | KnownRow] = dict(catalogue.rows)
    skips = list(catalogue.skips)
    digests = dict(catalogue.synced_digests)
    for name, deferred in catalogue.deferred.items():
        prior = deferred.prior
        if name in untouched:
            digest = bytes.fromhex(prior.signature)
            rows[name] = wanted = KnownRow(name, prior.description, digest)
            current[name] = (wanted if prior.stored_description == prior.description
                             else KnownRow(name, prior.stored_description, digest))
            continue
        row = current.get(name)
        if row is not None:
            digest = synced_digest(row)
            if digest.hex() == prior.signature:
                if row.description != prior.description:
                    row = dataclasses.replace(row, description=prior.description)
                rows[name] = row
                digests[id(row)] = digest  # (only rows this catalogue holds: ids stay theirs)
                continue
        try:
            rows[name] = map_entry(orjson.loads(deferred.raw))
        except (ModelDataError, orjson.JSONDecodeError) as exc:  # it mapped last time; still
            skips.append(Skip(name, SKIP_DATA_ERROR, str(exc), prior.deployment_id))
    resolved = dataclasses.replace(catalogue, rows=rows, skips=tuple(skips), deferred={},
                                   synced_digests=digests)
    return Resolved(resolved, current, versions)


def record(conn: sa.Connection, resolved: Resolved, plan: SyncPlan, loaded: Loaded,
           audit_id: str | None = None) -> None:
    """Inside the sync's transaction, after its writes: what the next sync may recognise, and
    (PostgreSQL) the version each row in step with its entry was left at, with ``audit_id``, the
    id this sync's audit row will have. Written only when it differs from what this sync loaded
    (a re-sync with few changes rewrites one row); when it does not, the rows it records are
    exactly as the sync that wrote it left them, and its audit id stays."""
    catalogue, versions = resolved.catalogue, resolved.versions
    if versions is not None and plan.has_changes:
        # (were a row written under another version, the next sync would read it: no harm)
        ours = transaction_version(conn)
        versions = {**versions, **{a.model_id: ours for a in plan.actions
                                   if a.action in WRITING_ACTIONS}}
    lines: list[list[Any]] = []
    for name, (digest, deployment, length) in catalogue.entry_digests.items():
        row = catalogue.rows.get(name)
        if row is None:
            continue
        settled = versions is not None and name in plan.settled and name in versions
        if type(row) is KnownRow and settled:
            prior = loaded.priors.get(digest)
            if prior is not None and versions[name] == prior.version:  # type: ignore[index]
                # (a known row is planned unchanged: its line would be built exactly as read)
                lines.append(loaded.line_of[digest])
                continue
        line = [digest, name, deployment, plan.desired_digests[name].hex(), row.description,
                length]
        if settled:
            line.append(versions[name])  # type: ignore[index]
            if plan.settled[name] != row.description:
                line.append(plan.settled[name])
        lines.append(line)
    if lines == loaded.lines:
        return
    state = {
        "mapping": MAPPING_CODE,
        "format": FORMAT,
        "seed": loaded.seed,  # the seed this sync's digests were made with
        "audit": audit_id,
        # one JSON text, not 50,000 JSON values: the database stores it without parsing it
        "entries": orjson.dumps(lines).decode(),
    }
    put_control(conn, STATE_KEY, state, "sync")
