"""Snapshots after syncs (PostgreSQL and SQLite): whole ones, deltas against the snapshot the rows planned
from the record are in, the chain a restore reads, and pruning that keeps what a kept snapshot
needs. Every snapshot must restore exactly the catalogue the database held after its sync."""

from __future__ import annotations

import random

import orjson
import pytest
import sqlalchemy as sa
import zstandard

from sync_core import mapping, snapshots
from sync_core.config import Secret
from sync_core.litellm import LiteLLMClient
from sync_core.plan import SyncOptions
from sync_core.snapshots import SnapshotSource, snapshot_taker
from sync_core.sync import SyncService
from tests.fake_litellm import FakeLiteLLM
from tests.test_known_entries import KEY, catalogue, run

ZSTD = b"\x28\xb5\x2f\xfd"


@pytest.fixture
def fake():
    with FakeLiteLLM(catalogue(), key=KEY) as server:
        yield server


def service_for(engine, fake, keep=snapshots.DEFAULT_KEEP):
    return SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)),
                       on_finished=snapshot_taker(engine, keep))


def stored(engine):
    """{sync audit id: (base, decoded content)} of the snapshots kept."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(snapshots.snapshots.c.sync_audit_id,
                                      snapshots.snapshots.c.base_sync_audit_id,
                                      snapshots.snapshots.c.entries)).all()
    return {i: (base, snapshots._decoded(bytes(blob))) for i, base, blob in rows}


def in_database(engine):
    """The available models' metadata as the database holds them (as the rows are read)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT id, CAST(metadata AS TEXT) FROM models "
            "WHERE coalesce(availability, 'available') = 'available'")).all()
    result = {}
    for model_id, text in rows:
        value = orjson.loads(text) if text else {}
        result[model_id] = value if isinstance(value, dict) else {"value": value}
    return result


def restored(engine, audit_id):
    """The catalogue a restore of this snapshot would sync from, as metadata by id."""
    return {e["model_name"]: {"litellm_model_info": e["model_info"],
                              "litellm_params": e["litellm_params"]}
            for e in SnapshotSource(engine, audit_id).fetch_entries()}


def comparable(metadata):
    return {k: {"litellm_model_info": v.get("litellm_model_info") or {},
                "litellm_params": v.get("litellm_params") or {}} for k, v in metadata.items()}


def test_a_resync_planned_from_the_record_stores_only_what_it_read(engine, fake):
    """The re-sync's snapshot is a delta against the first sync's: the ids and the rows it read
    or wrote (the changed one and two rows with odd values nobody synced); restoring either
    gives exactly the catalogue the database held after that sync."""
    service = service_for(engine, fake)
    first = run(service)
    after_first = in_database(engine)
    entries = catalogue()
    entries[7]["model_info"]["input_cost_per_token"] = 5e-6
    fake.entries = entries
    with engine.begin() as conn:  # rows LiteLLM does not serve, with odd values
        conn.execute(sa.text("CREATE TEMP TABLE odd AS SELECT * FROM models WHERE id = 'm-000'"))
        conn.execute(sa.text("UPDATE odd SET id = 'x-null', metadata = NULL, availability = NULL"))
        conn.execute(sa.text("INSERT INTO models SELECT * FROM odd"))
        conn.execute(sa.text("UPDATE odd SET id = 'x-list', metadata = '[1]'"))
        conn.execute(sa.text("INSERT INTO models SELECT * FROM odd"))
    again = run(service, options=SyncOptions(mark_unavailable=False))
    assert again.updated_models == 1 and again.plan.summary["unchanged"] == 41
    kept = stored(engine)
    assert kept[first.audit_id][0] is None and isinstance(kept[first.audit_id][1], list)
    base, delta = kept[again.audit_id]
    assert base == first.audit_id == again.recorded_by
    assert sorted(item["id"] for item in delta["upsert"]) == ["m-007", "x-list", "x-null"]
    assert len(delta["ids"]) == 42
    assert restored(engine, first.audit_id) == comparable(after_first)
    now = restored(engine, again.audit_id)
    assert now == comparable(in_database(engine))
    assert sorted(now) == [f"m-{i:03d}" for i in range(40)] + ["x-list", "x-null"]
    assert now["m-007"]["litellm_model_info"]["input_cost_per_token"] == 5e-6
    assert now["m-003"]["litellm_model_info"] == mapping.map_catalogue(
        [entries[3]]).rows["m-003"].metadata["litellm_model_info"]


def test_without_the_snapshot_the_record_was_made_a_whole_one_is_taken(engine, fake):
    """The first sync's snapshot is gone, and an admin's edit was recorded by a sync that
    changed nothing (so took no snapshot): each time the next snapshot is whole, built from the
    rows, and restores the catalogue as it was."""
    service = service_for(engine, fake)
    first = run(service)
    with engine.begin() as conn:
        conn.execute(sa.delete(snapshots.snapshots))
    entries = catalogue()
    entries[2]["model_info"]["max_tokens"] = 777
    fake.entries = entries
    second = run(service)
    base, content = stored(engine)[second.audit_id]
    assert second.recorded_by == first.audit_id
    assert base is None and isinstance(content, list) and len(content) == 40
    assert restored(engine, second.audit_id) == comparable(in_database(engine))

    with engine.begin() as conn:  # an admin's description: the next sync records the row's
        conn.execute(sa.text(  # new version and changes nothing, so takes no snapshot
            "UPDATE models SET description = 'edited' WHERE id = 'm-004'"))
    quiet = run(service)
    assert quiet.success and not quiet.plan.has_changes
    entries[9]["model_info"]["input_cost_per_token"] = 9e-6
    fake.entries = entries
    third = run(service)
    assert third.recorded_by == quiet.audit_id
    base, content = stored(engine)[third.audit_id]
    assert base is None and isinstance(content, list)
    assert restored(engine, third.audit_id) == comparable(in_database(engine))


def test_chains_are_bounded_and_pruning_keeps_what_a_kept_snapshot_reads(engine, fake,
                                                                           monkeypatch):
    """With ``keep`` = 2 and chains of at most 2 deltas: the snapshots a kept delta is read
    against stay, the rest go, and every kept one restores its sync's catalogue."""
    monkeypatch.setattr(snapshots, "MAX_CHAIN", 2)
    service = service_for(engine, fake, keep=2)
    entries = catalogue()
    expected = {}
    audit_ids = []
    for round_ in range(7):
        if round_:
            entries[round_]["model_info"]["input_cost_per_token"] = round_ * 1e-5
            fake.entries = entries
        result = run(service)
        assert result.success and result.plan.has_changes
        audit_ids.append(result.audit_id)
        expected[result.audit_id] = comparable(in_database(engine))
    kept = stored(engine)
    bases = [kept[i][0] if i in kept else "gone" for i in audit_ids]
    # whole, delta, delta, whole (the chain is full), delta, delta, whole; the newest two
    # are kept, and the two the older of them is read against
    assert bases == ["gone", "gone", "gone", None, audit_ids[3], audit_ids[4], None]
    assert set(kept) == set(audit_ids[3:])
    for audit_id in kept:
        assert restored(engine, audit_id) == expected[audit_id]


@pytest.mark.parametrize("seed", [5, 6])
def test_every_snapshot_restores_its_syncs_catalogue(engine, fake, seed):
    """Random upstream changes, removals, additions and admin edits between syncs: each
    snapshot, delta or whole, restores what the database held right after its sync."""
    rng = random.Random(seed)
    service = service_for(engine, fake)
    entries = catalogue()
    expected = {}
    for round_ in range(10):
        for _ in range(rng.randint(1, 3)):
            change = rng.choice(["price", "remove", "add", "edit"])
            if change == "price" and entries:
                rng.choice(entries)["model_info"]["input_cost_per_token"] = rng.randint(1, 99) * 1e-7
            elif change == "remove" and len(entries) > 30:
                entries.pop(rng.randrange(len(entries)))
            elif change == "add":
                entries.append(catalogue(60 + round_)[-1])
            else:
                set_note = ("jsonb_set(metadata, '{litellm_model_info,note}', "
                            "to_jsonb(CAST(:n AS text)))" if engine.dialect.name == "postgresql"
                            else "json_set(metadata, '$.litellm_model_info.note', :n)")
                with engine.begin() as conn:
                    conn.execute(sa.text(
                        f"UPDATE models SET metadata = {set_note} "
                        "WHERE id = (SELECT id FROM models ORDER BY random() LIMIT 1)"),
                        {"n": f"edit {round_}"})
        fake.entries = entries
        result = run(service)
        assert result.success, result.error_message
        if result.plan is not None and result.plan.has_changes:
            expected[result.audit_id] = comparable(in_database(engine))
    kept = stored(engine)
    assert any(base is not None for base, _ in kept.values())  # deltas were taken
    assert set(expected) == set(kept)
    for audit_id, catalogue_then in expected.items():
        assert restored(engine, audit_id) == catalogue_then


def test_snapshots_taken_by_earlier_versions_still_restore(engine, fake):
    """Earlier versions stored gzip-compressed snapshots: they restore exactly as the
    Zstandard-compressed one they are re-encoded from."""
    import gzip

    service = service_for(engine, fake)
    first = run(service)
    expected = SnapshotSource(engine, first.audit_id).fetch_entries()
    assert len(expected) == 40
    with engine.begin() as conn:
        blob = conn.execute(sa.select(snapshots.snapshots.c.entries)).scalar_one()
        assert bytes(blob)[:4] == ZSTD
        legacy = gzip.compress(zstandard.ZstdDecompressor().decompress(blob))
        conn.execute(sa.update(snapshots.snapshots).values(entries=legacy))
    assert SnapshotSource(engine, first.audit_id).fetch_entries() == expected


def test_without_the_record_writers_id_a_partial_plan_is_never_a_whole_snapshot(engine, fake):
    """A plan holding rows it never read, with no record writer to be a delta of: the database
    builds the whole snapshot (the plan's rows alone would leave the others out)."""
    service = service_for(engine, fake)
    run(service)
    entries = catalogue()
    entries[4]["model_info"]["input_cost_per_token"] = 6e-6
    fake.entries = entries
    quiet = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))  # (no listener)
    second = run(quiet)
    second.recorded_by = None
    assert snapshots.take_snapshot(engine, second)
    base, content = stored(engine)[second.audit_id]
    assert base is None and isinstance(content, list) and len(content) == 40
    assert restored(engine, second.audit_id) == comparable(in_database(engine))


def first_and_resync(engine, fake):
    """A first sync, then a re-sync with one price changed: its snapshot is a delta."""
    service = service_for(engine, fake)
    first = run(service)
    entries = catalogue()
    entries[1]["model_info"]["input_cost_per_token"] = 3e-6
    fake.entries = entries
    return first, run(service)


def test_a_delta_that_does_not_hold_what_it_should_cannot_be_restored(engine, fake):
    first, second = first_and_resync(engine, fake)
    _, delta = stored(engine)[second.audit_id]
    delta["ids"].append("never-synced")  # in no snapshot
    with engine.begin() as conn:
        conn.execute(sa.update(snapshots.snapshots)
                     .where(snapshots.snapshots.c.sync_audit_id == second.audit_id)
                     .values(entries=zstandard.ZstdCompressor().compress(orjson.dumps(delta))))
    assert stored(engine)[second.audit_id][0] == first.audit_id
    with pytest.raises(snapshots.SnapshotNotFound, match="cannot be restored"):
        SnapshotSource(engine, second.audit_id)


def test_a_delta_whose_base_is_gone_cannot_be_restored_and_says_so(engine, fake):
    first, second = first_and_resync(engine, fake)
    assert stored(engine)[second.audit_id][0] == first.audit_id
    with engine.begin() as conn:
        conn.execute(sa.delete(snapshots.snapshots)
                     .where(snapshots.snapshots.c.sync_audit_id == first.audit_id))
    with pytest.raises(snapshots.SnapshotNotFound, match="no longer kept"):
        SnapshotSource(engine, second.audit_id)


def test_a_whole_snapshot_read_from_the_rows_holds_what_a_delta_would(engine):
    """The whole snapshot taken from the rows themselves (PostgreSQL in one statement, SQLite
    read and packed) holds every available row (no availability counts as available), with its
    metadata as a plan reads it: SQL NULL is ``{}``, anything but an object (JSON null
    included) is ``{"value": …}``, on both databases alike."""
    from datetime import UTC, datetime

    rows = [("r0", None, None), ("r1", "[1]", "available"), ("r2", "null", "available"),
            ("r3", '"s"', None), ("r4", '{"b": 1.50, "a": [2]}', "available"),
            ("r5", '{"x": 1}', "unavailable")]
    with engine.begin() as conn:
        for model_id, metadata, availability in rows:
            conn.execute(sa.text("INSERT INTO models (id, name, provider, metadata, availability) "
                                 "VALUES (:i, :i, 'p', :m, :a)"),
                         {"i": model_id, "m": metadata, "a": availability})
        snapshots._take_whole(conn, {"sync_audit_id": "00000000-0000-0000-0000-000000000001",
                                     "created_at": datetime.now(UTC), "model_count": -1})
        blob, count = conn.execute(sa.text(
            "SELECT entries, model_count FROM model_sync_snapshots")).one()
    assert count == 5
    assert snapshots._decoded(bytes(blob)) == [
        {"id": "r0", "metadata": {}}, {"id": "r1", "metadata": {"value": [1]}},
        {"id": "r2", "metadata": {"value": None}}, {"id": "r3", "metadata": {"value": "s"}},
        {"id": "r4", "metadata": {"a": [2], "b": 1.5}}]
