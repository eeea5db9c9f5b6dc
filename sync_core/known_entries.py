"""Entries an earlier sync mapped, recognised by their bytes: a re-sync maps only what changed.

After every applied sync the service records, for each row it took from an entry of LiteLLM's
answer: the entry's digest, the row's name and deployment id, the row's synced digest and its
description, and for a row the sync left holding exactly those values, the row's version
(``store.row_versions``: ``xmin`` on PostgreSQL, a trigger-kept stamp on SQLite); the lines go
in answer order, with blocks of consecutive entries (their length and one digest), and the
record is stored compressed (``records``). The next sync recognises those entries by digest
while it splits the answer, whole blocks at once (``entry_split``), and neither parses nor maps
them. Before planning, each is resolved against
the database. A row still at the recorded version was written by nobody since: it is planned
from the record alone, without reading it (:class:`~sync_core.mapping.KnownRow`). Any other row
is read: when it still has the recorded synced digest, it holds exactly the values mapping the
entry would give (with the recorded description), so it stands in for the mapped row; otherwise
the entry is parsed and mapped after all. So an admin's edit, a restore or a failed sync can
never make a recognised entry wrong, only slower. (On PostgreSQL a version is a 32-bit
transaction id: it could only come back after four billion transactions with the row written by
exactly that one, and PostgreSQL freezes rows long before. SQLite's stamps only grow, and a
count made afresh restarts at a random 48-bit offset: migration 0009.)

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
from .entry_split import Block, Carried, KnownLines
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
from .records import read_record, write_record
from .store import read_current_rows, row_versions, written_versions

log = logging.getLogger("sync_core.known_entries")
STATE_KEY = "known_entries"
#: The mapping rules the record was made with: our code and what it leans on (Python's
#: Decimal and URL parsing, orjson's number formatting).
MAPPING_CODE = hashlib.sha256(
    b"".join(Path(m.__file__).read_bytes() for m in (mapping, redact, planning, store))
    + f"{sys.version}|{orjson.__version__}".encode()).hexdigest()[:16]


#: 4: the lines in answer order, with blocks of consecutive entries (``entry_split.Block``);
#: 3: entries identified by XXH3-128 keyed with the record's seed, by SHA-256 before.
FORMAT = 4


def _prior(line: list[Any]) -> Prior:
    """A record line as the splitter's :class:`Prior`: ``[digest, name, deployment, synced
    digest, description, length, version?, stored description?]``."""
    return Prior(line[1], line[2], line[3], line[4], line[5],
                 line[6] if len(line) > 6 else None, line[7] if len(line) > 7 else line[4])


@dataclasses.dataclass
class Loaded:
    """What the last applied sync recorded, and the seed the digests are keyed with
    (``entry_split.entry_digest``), random per record and kept in the database, so nobody who
    shapes an entry can aim its digest at another entry's."""

    seed: int
    #: The record's lines as stored, in answer order: a line whose entry and row are as the
    #: record left them is written back as it was read.
    lines: list[list[Any]] = dataclasses.field(default_factory=list)
    #: ``[first line, count, length, digest]`` of each block of consecutive entries.
    blocks: list[list[Any]] = dataclasses.field(default_factory=list)
    #: The audit id of the sync that wrote the record: rows planned from it (``KnownRow``) are
    #: as that sync left them, so its snapshot holds them (``snapshots`` stores only the rest).
    audit: str | None = None
    known: KnownLines = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        lines = self.lines
        self.known = KnownLines([line[0] for line in lines], [line[5] for line in lines],
                                [Block(*block) for block in self.blocks],
                                lambda i: _prior(lines[i]), lines)

    @property
    def priors(self) -> dict[str, Prior]:
        """Every recorded entry's :class:`Prior`, by digest (the splitter makes only the ones
        it needs)."""
        return {line[0]: _prior(line) for line in self.lines}


def fresh_seed() -> int:
    return secrets.randbits(64)


def load(conn: sa.Connection, *, priors: bool = True) -> Loaded:
    """The entries the last applied sync recorded (none after a mapping change, or when the
    record cannot be read: then every entry is simply mapped), and its seed (a new one when
    there is no record to keep). ``priors=False``: the seed only (a forced sync maps every
    entry)."""
    try:
        body = read_record(conn, STATE_KEY)
        if body is None:
            return Loaded(fresh_seed())
        state = orjson.loads(body)
        if (not isinstance(state, dict) or state.get("mapping") != MAPPING_CODE
                or state.get("format") != FORMAT or type(state.get("seed")) is not int):
            return Loaded(fresh_seed())
        if not priors:
            return Loaded(state["seed"])
        lines, blocks, audit = state["entries"], state["blocks"], state.get("audit")
        if not isinstance(lines, list) or not all(type(line) is list for line in lines):
            raise ValueError("lines that are not lists")
        if not all(type(line[5]) is int and type(line[0]) is str
                   and (len(line) < 7 or type(line[6]) is str) for line in lines):
            raise ValueError("a line without a digest, a length or a text version")
        if not all(type(b) is list and len(b) == 4 and all(type(v) is int for v in b[:3])
                   and type(b[3]) is str and b[0] >= 0 and b[1] > 0
                   and b[0] + b[1] <= len(lines) for b in blocks):
            raise ValueError("a block outside the lines")
        return Loaded(state["seed"], lines, blocks, audit if type(audit) is str else None)
    except (KeyError, TypeError, ValueError, IndexError):  # (orjson's decode error: ValueError)
        log.warning("the record of known entries is unreadable; mapping every entry")
        return Loaded(fresh_seed())


@dataclasses.dataclass(frozen=True)
class Resolved:
    """The catalogue ready to plan, the database rows to plan it against, every row's version
    as the sync found it, and the blocks carried whole (for the record)."""

    catalogue: MappedCatalogue
    current: dict[str, ModelRow | KnownRow]
    versions: dict[str, str | None]
    carried: tuple[Carried, ...] = ()
    #: The carried blocks (by ``index``) whose every row was planned from the record alone.
    still: frozenset[int] = frozenset()


def _in_step(row: ModelRow | KnownRow | None, signature: str, description: str | None,
             digests: dict[int, bytes]) -> ModelRow | KnownRow | None:
    """The row standing in for its recognised entry's mapping: when it still has the recorded
    synced digest, it holds exactly the values mapping the entry gives, with the recorded
    description. None when it does not (or is gone): the entry is mapped after all."""
    if row is None:
        return None
    digest = synced_digest(row)
    if digest.hex() != signature:
        return None
    if row.description != description:
        row = dataclasses.replace(row, description=description)
    digests[id(row)] = digest  # (only rows this catalogue holds: ids stay theirs)
    return row


def resolve(conn: sa.Connection, catalogue: MappedCatalogue, options: SyncOptions, *,
            trust_versions: bool = True) -> Resolved:
    """Read the rows the plan needs and give every recognised entry its row.

    A recognised entry whose row nobody wrote since the last sync left it in step with the
    entry (same version) is planned from the record alone (:class:`KnownRow`),
    its row not even read, when such rows are most of the catalogue. Otherwise the row is
    read: when it still has the recorded synced digest, it holds exactly what mapping the entry
    would give (with the recorded description) and stands in for the mapped row; else the
    entry is parsed and mapped after all. ``trust_versions=False`` reads every row (a reviewed
    plan is checked against exactly what a preview reads). Entries of carried blocks are
    taken from the record's lines the same way, one by one only when their rows moved."""
    versions = row_versions(conn)
    deferred = dict(catalogue.deferred)
    untouched: dict[str, Deferred] = {}
    quiet: list[list[Any]] = []  # lines of carried blocks planned from the record alone
    moved: list[tuple[Carried, list[bool]]] = []  # blocks with lines that must be looked at
    if trust_versions and options.selection.is_everything and not options.force_update:
        untouched = {name: d for name, d in deferred.items()
                     if d.prior.version is not None and versions.get(name) == d.prior.version
                     # (never recorded so: such a row is due a description fill, so read it)
                     and not (d.prior.stored_description is None
                              and d.prior.description is not None)}
        version = versions.get
        for block in catalogue.carried:
            # a line's row is as the last sync left it (same version), and not due a
            # description fill (recorded without a description while its entry has one)
            flags = [len(line) > 6 and version(line[1]) == line[6]
                     and not (len(line) > 7 and line[7] is None and line[4] is not None)
                     for line in block.lines]
            if all(flags):
                quiet.extend(block.lines)
            else:
                quiet.extend(line for line, ok in zip(block.lines, flags, strict=True) if ok)
                moved.append((block, flags))
    else:
        moved = [(block, [False] * block.block.count) for block in catalogue.carried]
    if (len(untouched) + len(quiet)) * 2 > len(versions):
        planned = {line[1] for line in quiet}.union(untouched)
        current: dict[str, ModelRow | KnownRow] = dict(
            read_current_rows(conn, only=[i for i in versions if i not in planned]))
    else:
        untouched, quiet = {}, []
        moved = [(block, [False] * block.block.count) for block in catalogue.carried]
        current = dict(read_current_rows(conn))
    still = frozenset(block.index for block in catalogue.carried) - {
        block.index for block, _ in moved}
    if not deferred and not quiet and not moved:
        return Resolved(catalogue, current, versions, catalogue.carried, still)
    rows: dict[str, ModelRow | KnownRow] = dict(catalogue.rows)
    digests = dict(catalogue.synced_digests)
    for block, flags in moved:  # lines whose rows must be read: as recognised entries
        raws = None
        for offset, (line, ok) in enumerate(zip(block.lines, flags, strict=True)):
            if ok:
                continue
            row = _in_step(current.get(line[1]), line[3], line[4], digests)
            if row is not None:
                rows[line[1]] = row
                continue
            raws = raws or block.entries()  # (its bytes, to map it after all)
            prior = block.known.prior(block.block.first + offset)
            deferred[prior.model_id] = Deferred(prior, raws[offset])
    for line in quiet:
        name, description = line[1], line[4]
        rows[name] = wanted = KnownRow(name, description, bytes.fromhex(line[3]))
        stored = line[7] if len(line) > 7 else description
        current[name] = wanted if stored == description else KnownRow(name, stored,
                                                                       wanted.digest)
    skips = list(catalogue.skips)
    for name, deferred_entry in deferred.items():
        prior = deferred_entry.prior
        if name in untouched:
            digest = bytes.fromhex(prior.signature)
            rows[name] = wanted = KnownRow(name, prior.description, digest)
            current[name] = (wanted if prior.stored_description == prior.description
                             else KnownRow(name, prior.stored_description, digest))
            continue
        row = _in_step(current.get(name), prior.signature, prior.description, digests)
        if row is not None:
            rows[name] = row
            continue
        try:
            rows[name] = map_entry(orjson.loads(deferred_entry.raw))
        except (ModelDataError, orjson.JSONDecodeError) as exc:  # it mapped last time; still
            skips.append(Skip(name, SKIP_DATA_ERROR, str(exc), prior.deployment_id))
    resolved = dataclasses.replace(catalogue, rows=rows, skips=tuple(skips), deferred={},
                                   carried=(), synced_digests=digests)
    return Resolved(resolved, current, versions, catalogue.carried, still)


def record(conn: sa.Connection, resolved: Resolved, plan: SyncPlan, loaded: Loaded,
           audit_id: str | None = None) -> None:
    """Inside the sync's transaction, after its writes: what the next sync may recognise, and
    the version each row in step with its entry was left at, with ``audit_id``, the
    id this sync's audit row will have. The lines go in answer order, and each block of
    consecutive entries the sync found whole or split (``entry_split.Block``) is kept when
    every entry of it is recorded. Written only when it differs from what this sync loaded (a
    re-sync with few changes rewrites one row); when it does not, the rows it records are
    exactly as the sync that wrote it left them, and its audit id stays."""
    catalogue, versions = resolved.catalogue, resolved.versions
    written: dict[str, str | None] = {}
    if plan.has_changes:
        # (were a row written under another version, the next sync would read it: no harm)
        written = written_versions(conn, [a.model_id for a in plan.actions
                                          if a.action in WRITING_ACTIONS])
        versions = {**versions, **written}
    rows, settled, desired = catalogue.rows, plan.settled, plan.desired_digests

    def line_for(digest: str, name: str, deployment: str | None, length: int,
                 row: ModelRow | KnownRow, recorded: list[Any] | None) -> list[Any]:
        in_step = name in settled and versions.get(name) is not None
        if (recorded is not None and in_step and type(row) is KnownRow and len(recorded) > 6
                and versions[name] == recorded[6]):
            # (a known row is planned unchanged: its line would be built exactly as read)
            return recorded
        line = [digest, name, deployment, desired[name].hex(), row.description, length]
        if in_step:
            line.append(versions[name])
            if settled[name] != row.description:
                line.append(settled[name])
        return line

    by_entry: dict[int, list[Any]] = {}
    for name, (digest, deployment, length, index) in catalogue.entry_digests.items():
        row = rows.get(name)
        if row is not None:
            at = loaded.known.index_of(digest) if type(row) is KnownRow else None
            by_entry[index] = line_for(digest, name, deployment, length, row,
                                       loaded.lines[at] if at is not None else None)
    for block in resolved.carried:
        if block.index in resolved.still and written.keys().isdisjoint(
                line[1] for line in block.lines):
            # every row planned from its line, none written: the lines as they were read
            by_entry.update(zip(range(block.index, block.index + block.block.count),
                                block.lines, strict=True))
            continue
        for offset, line in enumerate(block.lines):
            row = rows.get(line[1])
            if row is not None:
                by_entry[block.index + offset] = line_for(line[0], line[1], line[2], line[5],
                                                          row, line)
    order = sorted(by_entry)
    lines = [by_entry[index] for index in order]
    line_of = {index: at for at, index in enumerate(order)}
    blocks = []
    for block in [*(Block(c.index, c.block.count, c.block.length, c.block.digest)
                    for c in resolved.carried), *catalogue.blocks]:
        first = line_of.get(block.first)
        last = block.first + block.count - 1
        if first is not None and first + block.count <= len(order) and \
                order[first + block.count - 1] == last:  # every entry of it recorded
            blocks.append([first, block.count, block.length, block.digest])
    blocks.sort()
    if lines == loaded.lines and blocks == loaded.blocks:
        return
    write_record(conn, STATE_KEY, orjson.dumps({
        "mapping": MAPPING_CODE,
        "format": FORMAT,
        "seed": loaded.seed,  # the seed this sync's digests were made with
        "audit": audit_id,
        "entries": lines,
        "blocks": blocks,
    }))
