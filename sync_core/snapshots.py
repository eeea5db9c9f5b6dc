"""Snapshots of the catalogue after each sync that changed it, and restoring one.

A snapshot holds, for every model available after the sync, its stored metadata — the LiteLLM
entry it was synced from. It is taken from the applied plan and Zstandard-compressed (0.02 s and
1.1 MB for 10,000 models; gzip, used before and still read, took 0.05 s for 1.7 MB).

A re-sync plans most rows without reading them (``known_entries``): rows nobody wrote
since the sync that recorded them, so exactly as that sync left them, and as its snapshot holds
them. Its snapshot is then stored as a delta against that one: the ids available after the sync
and the metadata of the rows the plan read or wrote (a few kilobytes for 1% of 10,000 models).
A restore reads the chain back to a whole snapshot (at most ``MAX_CHAIN`` deltas), and pruning
keeps every snapshot a kept one is read against. When there is no such snapshot (that sync
changed nothing, its snapshot failed or was pruned, the chain is long), a whole one is taken
from the rows themselves: PostgreSQL builds it in one statement and compresses it as it stores it
(0.17 s for 10,000 here), SQLite's ids and metadata are read and packed: the catalogue as it
stands right after the sync committed.

Restoring is an ordinary sync whose source is the snapshot instead of LiteLLM: it is planned,
shown as a diff, guarded, applied in one transaction and audited like any other — and the next
sync from LiteLLM will move the catalogue again unless scheduled syncs are paused.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
import zstandard
from sqlalchemy.engine import Engine

from .db import is_postgres
from .errors import SyncError
from .mapping import KnownRow
from .plan import DELETE, MARK_UNAVAILABLE, WRITING_ACTIONS, SyncPlan
from .schema import metadata
from .store import available_metadata
from .sync import SyncResult

log = logging.getLogger("sync_core.snapshots")
DEFAULT_KEEP = 20

snapshots = sa.Table(
    "model_sync_snapshots",
    metadata,
    sa.Column("sync_audit_id", sa.String(36), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model_count", sa.Integer, nullable=False),
    sa.Column("entries", sa.LargeBinary, nullable=False),
    #: The snapshot a delta is read against (None: a whole snapshot).
    sa.Column("base_sync_audit_id", sa.String(36), nullable=True),
)
#: Deltas in a row before a whole snapshot is stored again: what a restore reads at most.
MAX_CHAIN = 10
#: Advisory lock taking and pruning snapshots (the sync lock is ``(…, 1)``, migrations ``2``).
SNAPSHOT_LOCK = (0x4C4D5353, 3)


class SnapshotNotFound(SyncError):
    kind = "snapshot_not_found"


def _final_rows(plan: SyncPlan) -> tuple[list[str], list[tuple[str, bytes]]]:
    """The ids available after the plan was applied, and their rows the plan holds (no
    re-read): all of them but the ones it planned without reading (``KnownRow``)."""
    ids: list[str] = []
    rows: list[tuple[str, bytes]] = []
    for action in plan.actions:
        if action.action in (MARK_UNAVAILABLE, DELETE):
            continue
        row = action.target if action.action in WRITING_ACTIONS else action.current
        if row is not None and row.availability == "available":
            ids.append(row.id)
            if type(row) is not KnownRow:
                rows.append((row.id, row.metadata_json))  # type: ignore[union-attr]
    return ids, rows


def _packed(rows: list[tuple[str, bytes]], **extra: Any) -> bytes:
    """Rows' ids and metadata as compressed JSON; the stored metadata is already canonical JSON:
    embedded, never re-encoded."""
    items = [{"id": i, "metadata": orjson.Fragment(m)} for i, m in rows]
    payload = orjson.dumps({**extra, "upsert": items} if extra else items)
    return zstandard.ZstdCompressor(level=1).compress(payload)


#: The available rows' ids and metadata as one JSON text (uncompressed: the column's own
#: compression packs it, see migration 0005).
_PG_SNAPSHOT = sa.text(
    "INSERT INTO model_sync_snapshots (sync_audit_id, created_at, model_count, entries) "
    "SELECT :id, :at, count(*), convert_to(coalesce(json_agg(json_build_object('id', id, "
    "'metadata', CASE WHEN metadata IS NULL THEN '{}'::jsonb "  # (as store.read_current_rows
    "WHEN jsonb_typeof(metadata) = 'object' THEN metadata "  # sees odd metadata)
    "ELSE jsonb_build_object('value', metadata) END) ORDER BY id), '[]')::text, 'UTF8') "
    "FROM models WHERE coalesce(availability, 'available') = 'available'")


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _decoded(blob: bytes) -> Any:
    """A stored snapshot: Zstandard-compressed JSON (taken from a plan), gzip-compressed (taken
    by earlier versions) or plain JSON (built by PostgreSQL, which compresses it itself)."""
    if blob[:4] == _ZSTD_MAGIC:
        return orjson.loads(zstandard.ZstdDecompressor().decompress(blob))
    return orjson.loads(gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob)


def _entries(conn: sa.Connection, sync_audit_id: str) -> tuple[list[dict[str, Any]], Any]:
    """A snapshot's ``[{id, metadata}]`` (a delta read against its chain) and when it was
    taken."""
    row = conn.execute(sa.select(snapshots.c.entries, snapshots.c.created_at)
                       .where(snapshots.c.sync_audit_id == sync_audit_id)).first()
    if row is None:
        raise SnapshotNotFound(f"No snapshot of sync {sync_audit_id}; "
                               "`litemaas-sync restore --list` shows the ones kept")
    unreadable = SnapshotNotFound(f"The snapshot of sync {sync_audit_id} is stored as changes "
                                  "from a snapshot no longer kept; it cannot be restored")
    content, taken_at, depth = _decoded(bytes(row[0])), row[1], 0
    deltas = []
    try:
        while isinstance(content, dict):  # a delta: read its base first
            deltas.append(content)
            base = conn.execute(sa.select(snapshots.c.entries)
                                .where(snapshots.c.sync_audit_id == content["base"])).scalar()
            depth += 1
            if base is None or depth > MAX_CHAIN:
                raise unreadable
            content = _decoded(bytes(base))
        metadata = {item["id"]: item["metadata"] for item in content}
        for delta in reversed(deltas):
            changed = {item["id"]: item["metadata"] for item in delta["upsert"]}
            metadata = {i: changed[i] if i in changed else metadata[i] for i in delta["ids"]}
    except (KeyError, TypeError):  # (a chain that does not hold what it should)
        raise unreadable from None
    return [{"id": i, "metadata": m} for i, m in metadata.items()], taken_at


def _chains(conn: sa.Connection) -> dict[str, str | None]:
    """Every kept snapshot's base (None: a whole snapshot), newest first."""
    return dict(conn.execute(  # type: ignore[arg-type]
        sa.select(snapshots.c.sync_audit_id, snapshots.c.base_sync_audit_id)
        .order_by(snapshots.c.created_at.desc())).all())


def _depth(chains: dict[str, str | None], sync_audit_id: str | None) -> int | None:
    """How many deltas a restore of this snapshot reads; None when it, or a base, is gone."""
    depth = 0
    while sync_audit_id is not None and depth <= MAX_CHAIN:
        if sync_audit_id not in chains:
            return None
        sync_audit_id = chains[sync_audit_id]
        depth += sync_audit_id is not None
    return depth if sync_audit_id is None else None


def take_snapshot(engine: Engine, result: SyncResult, keep: int = DEFAULT_KEEP) -> bool:
    """After a successful sync that changed something: store the catalogue, prune old ones."""
    changed = result.new_models + result.updated_models + result.unavailable_models
    changed += result.restored_models + result.deleted_models
    if not result.success or not result.audit_id or not changed or result.plan is None:
        return False
    ids, rows = _final_rows(result.plan)
    with engine.begin() as conn:
        if is_postgres(conn):  # replicas' listeners one at a time: none prunes another's base
            conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({SNAPSHOT_LOCK[0]}, "
                                 f"{SNAPSHOT_LOCK[1]})"))
        chains = _chains(conn)
        values: dict[str, Any] = {"sync_audit_id": result.audit_id,
                                  "created_at": datetime.now(UTC), "model_count": len(ids)}
        base = result.recorded_by
        depth = _depth(chains, base) if base is not None else None
        if len(rows) == len(ids):  # every row at hand: a whole snapshot
            conn.execute(sa.insert(snapshots).values(entries=_packed(rows), **values))
            base = None
        elif depth is not None and depth < MAX_CHAIN:
            conn.execute(sa.insert(snapshots).values(
                entries=_packed(rows, base=base, ids=ids), base_sync_audit_id=base, **values))
        else:  # no snapshot holds the rows planned from the record: read from the database
            _take_whole(conn, values)
            base = None
        _prune(conn, {result.audit_id: base, **chains}, keep)
    return True


def _take_whole(conn: sa.Connection, values: dict[str, Any]) -> None:
    """A whole snapshot of the rows as they stand: PostgreSQL builds it in one statement;
    SQLite's rows are read (id and metadata only) and packed here."""
    if is_postgres(conn):
        conn.execute(_PG_SNAPSHOT, {"id": values["sync_audit_id"], "at": values["created_at"]})
        return
    rows = available_metadata(conn)
    conn.execute(sa.insert(snapshots).values({**values, "model_count": len(rows),
                                              "entries": _packed(rows)}))


def _prune(conn: sa.Connection, chains: dict[str, str | None], keep: int) -> None:
    """Keep the newest ``keep`` snapshots and every snapshot one of them is read against."""
    needed: set[str] = set()
    for sync_audit_id in list(chains)[:keep]:
        while sync_audit_id is not None and sync_audit_id not in needed:
            needed.add(sync_audit_id)
            sync_audit_id = chains.get(sync_audit_id)
    stale = [i for i in chains if i not in needed]
    if stale:
        conn.execute(sa.delete(snapshots).where(snapshots.c.sync_audit_id.in_(stale)))


def snapshot_taker(engine: Engine, keep: int = DEFAULT_KEEP) -> Callable[[SyncResult], None]:
    """A sync listener; a failure to snapshot never affects the sync that already committed."""

    def listener(result: SyncResult) -> None:
        try:
            take_snapshot(engine, result, keep)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("could not store a catalogue snapshot: %s", type(exc).__name__)

    return listener


def list_snapshots(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    query = (sa.select(snapshots.c.sync_audit_id, snapshots.c.created_at, snapshots.c.model_count)
             .order_by(snapshots.c.created_at.desc()).limit(limit))
    with engine.connect() as conn:
        return [{str(k): v for k, v in r.items()} for r in conn.execute(query).mappings()]


class SnapshotSource:
    """A catalogue source serving an earlier snapshot (what a restore syncs from)."""

    mode = "snapshot"

    def __init__(self, engine: Engine, sync_audit_id: str):
        with engine.connect() as conn:
            items, self.taken_at = _entries(conn, sync_audit_id)
        self._entries = [
            {"model_name": item["id"],
             "litellm_params": item["metadata"].get("litellm_params") or {},
             "model_info": item["metadata"].get("litellm_model_info") or {}}
            for item in items
        ]
        self.model_info_url = f"snapshot://{sync_audit_id}"

    def fetch_entries(self) -> list[Any]:
        return orjson.loads(orjson.dumps(self._entries))

    cached_entries = fetch_entries

    def clear_cache(self) -> None:
        return None
