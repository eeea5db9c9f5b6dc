"""Recognised entries: a re-sync parses and maps only the entries that changed, and its plan is
exactly the one a full mapping gives, whatever an admin did to the rows in between."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
import sqlalchemy as sa

from sync_core import known_entries, mapping, records
from sync_core.access import SYSTEM
from sync_core.config import Secret
from sync_core.litellm import LiteLLMClient
from sync_core.plan import SyncOptions
from sync_core.sync import SyncService
from tests.factories import entry
from tests.fake_litellm import FakeLiteLLM

KEY = "sk-known-entries"


def catalogue(n: int = 40) -> list[dict]:
    return [entry(f"m-{i:03d}", input_cost_per_token=(i + 1) * 1e-7,
                  description=f"model {i}" if i % 3 else None) for i in range(n)]


@pytest.fixture
def fake():
    with FakeLiteLLM(catalogue(), key=KEY) as server:
        yield server


@pytest.fixture
def mapped(monkeypatch):
    """How many entries were mapped (parsed entries only reach ``map_entry``)."""
    calls: list[str] = []
    real = mapping.map_entry

    def counting(raw_entry):
        calls.append(raw_entry.get("model_name"))
        return real(raw_entry)

    monkeypatch.setattr(mapping, "map_entry", counting)
    monkeypatch.setattr(known_entries, "map_entry", counting)
    return calls


def run(service, **kwargs):
    return service.run(kwargs.pop("options", SyncOptions()), trigger="manual", actor=SYSTEM,
                       **kwargs)


def checked_run(service, options=None, mapped=None):
    """A sync that must apply exactly the plan a full mapping of the catalogue and a full read
    of the rows give (a preview's, same fingerprint). ``mapped`` is cleared after the full
    mapping, to count only the sync's. (Not given as a reviewed fingerprint: a reviewed sync
    reads every row, and this is to check the one that does not.)"""
    options = options or SyncOptions()
    expected = service.preview(options, fresh=True)
    if mapped is not None:
        mapped.clear()
    result = run(service, options=options)
    assert result.success, result.error_message
    if result.fast_path:  # nothing changed since the last sync: nothing was planned
        assert not expected.has_changes
        return result
    assert result.fingerprint == expected.fingerprint
    assert result.plan.summary == expected.summary
    return result


def execute(engine, sql, **params):
    with engine.begin() as conn:
        return conn.execute(sa.text(sql), params)


def stored_record(engine) -> bytes:
    with engine.connect() as conn:
        return records.read_record(conn, known_entries.STATE_KEY)


def store_record(engine, body: bytes) -> None:
    with engine.begin() as conn:
        records.write_record(conn, known_entries.STATE_KEY, body)


def test_a_resync_maps_only_the_changed_entries(engine, fake, mapped):
    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))
    first = run(service)
    assert first.success and first.new_models == 40 and len(mapped) == 40
    mapped.clear()
    entries = catalogue()
    entries[5]["model_info"]["input_cost_per_token"] = 9e-6
    entries.append(entry("m-new"))
    fake.entries = entries
    again = run(service)
    assert again.success and not again.fast_path
    assert (again.new_models, again.updated_models, again.unchanged_models) == (1, 1, 39)
    assert sorted(mapped) == ["m-005", "m-new"]
    with engine.connect() as conn:
        price = conn.execute(sa.text("SELECT input_cost_per_token FROM models "
                                     "WHERE id = 'm-005'")).scalar()
    assert Decimal(str(price)) == Decimal("0.000009")


def test_entry_digests_are_keyed_with_a_random_seed_kept_in_the_record(engine, fake, mapped):
    """Each record draws its own seed (so an entry cannot be shaped to another entry's digest
    without reading the database); the syncs after it keep that seed and recognise entries
    by it, and digests made with another seed recognise nothing."""
    from sync_core.entry_split import split_entries

    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))
    run(service)
    with engine.connect() as conn:
        first = known_entries.load(conn)
    assert len(first.priors) == 40 and 0 <= first.seed < 2**64
    fake.entries = catalogue()[:39]
    mapped.clear()
    assert run(service).success and mapped == []  # recognised with the recorded seed
    with engine.connect() as conn:
        again = known_entries.load(conn)
    assert again.seed == first.seed and set(again.priors) < set(first.priors)
    fake.entries = catalogue()
    body = LiteLLMClient(fake.url, Secret(KEY)).fetch_body()
    keyed = {digest for _, digest, _ in split_entries(body, seed=first.seed)}
    unkeyed = {digest for _, digest, _ in split_entries(body, seed=first.seed ^ 1)}
    assert keyed == set(first.priors) and not unkeyed & keyed
    assert len({known_entries.fresh_seed() for _ in range(3)}) == 3


def test_rows_changed_in_the_database_are_mapped_again_and_set_right(engine, fake, mapped):
    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))
    run(service)
    execute(engine, "UPDATE models SET context_length = 7 WHERE id = 'm-001'")
    execute(engine, "UPDATE models SET description = NULL WHERE id = 'm-002'")
    execute(engine, "UPDATE models SET availability = 'unavailable' WHERE id = 'm-004'")
    execute(engine, "DELETE FROM models WHERE id = 'm-007'")
    fake.entries = catalogue() + [entry("m-new")]  # (a change, so no fast path either)
    result = checked_run(service, mapped=mapped)
    # m-002 is not mapped: its description is recorded, and the plan refills it from that
    assert sorted(mapped) == ["m-001", "m-004", "m-007", "m-new"]
    assert (result.updated_models, result.restored_models, result.new_models) == (2, 1, 2)
    rows = dict(execute(engine, "SELECT id, coalesce(description, '-') || ':' || "
                        "context_length || ':' || availability FROM models").all())
    assert rows["m-001"] == "model 1:128000:available"
    assert rows["m-002"] == "model 2:128000:available"  # the description refilled
    assert rows["m-004"] == "model 4:128000:available"
    assert rows["m-007"] == "model 7:128000:available"


def test_recognised_rows_keep_an_admin_description_and_plan_as_a_full_mapping(engine, fake,
                                                                            mapped):
    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))
    run(service)
    execute(engine, "UPDATE models SET description = 'curated' WHERE id = 'm-003'")
    fake.entries = catalogue()[:-1]
    result = checked_run(service, mapped=mapped)
    assert mapped == []  # the admin-owned description does not make the row differ
    assert result.unavailable_models == 1
    assert execute(engine, "SELECT description FROM models WHERE id = 'm-003'").scalar() == \
        "curated"


def test_a_change_of_the_mapping_code_maps_everything_again(engine, fake, mapped, monkeypatch):
    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))
    run(service)
    monkeypatch.setattr(known_entries, "MAPPING_CODE", "another-version")
    fake.entries = catalogue()[1:]
    assert checked_run(service, mapped=mapped).unavailable_models == 1
    assert len(mapped) == 39
    mapped.clear()
    fake.entries = catalogue()[2:]
    run(service)
    assert mapped == []  # recorded again, under the new code


def test_a_forced_sync_maps_everything_and_a_failed_sync_records_nothing(engine, fake, mapped):
    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))
    run(service)
    mapped.clear()
    assert run(service, options=SyncOptions(force_update=True)).success
    assert len(mapped) == 40
    fake.entries = [entry(f"other-{i}") for i in range(40)]  # marks every model unavailable
    mapped.clear()
    refused = run(service)  # the mass-unavailable guard refuses: nothing is written
    assert not refused.success and refused.error_kind == "guard"
    fake.entries = catalogue()
    mapped.clear()
    run(service)
    assert mapped == []  # the record is still the one of the last applied sync


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_any_sequence_of_upstream_and_database_changes_plans_as_a_full_mapping(engine, fake,
                                                                               seed):
    """Random upstream changes (prices, new, removed, moved, duplicate deployments, names
    sharing a deployment, broken values) and database edits, in every conflict mode: each
    sync's plan equals a full mapping's, whichever blocks it carried whole."""
    rng = random.Random(seed)
    modes = ["litellm_wins", "database_wins", "merge"]
    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)),
                          conflict_resolution=rng.choice(modes), max_unavailable_share=1.0)
    entries = catalogue(30)
    for _ in range(8):
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(entries))
            kind = rng.choice(["price", "add", "remove", "duplicate", "shared", "move",
                               "broken", "flag"])
            if kind == "price":
                entries[i]["model_info"]["input_cost_per_token"] = rng.randint(1, 99) * 1e-7
            elif kind == "add":
                entries.append(entry(f"n-{rng.randrange(10**6)}"))
            elif kind == "remove" and len(entries) > 5:
                entries.pop(i)
            elif kind == "duplicate":
                twin = entry(entries[i]["model_name"], deployment_id=f"a-{rng.randrange(99)}",
                             max_input_tokens=rng.randint(1, 9) * 1000)
                entries.insert(rng.randrange(len(entries)), twin)
            elif kind == "shared":  # another name on an existing deployment: an expansion
                twin = entry(f"x-{rng.randrange(10**6)}",
                             deployment_id=entries[i]["model_info"]["id"])
                entries.insert(rng.randrange(len(entries)), twin)
            elif kind == "move":
                entries.insert(rng.randrange(len(entries)), entries.pop(i))
            elif kind == "broken":
                entries[i]["model_info"]["max_input_tokens"] = "lots"
            else:
                entries[i]["model_info"]["supports_vision"] = rng.random() < 0.5
        fake.entries = [dict(e, model_info=dict(e["model_info"])) for e in entries]
        for _ in range(rng.randint(0, 3)):
            model = f"m-{rng.randrange(30):03d}"
            execute(engine, rng.choice([
                "UPDATE models SET context_length = 1 WHERE id = :m",
                "UPDATE models SET description = NULL WHERE id = :m",
                "UPDATE models SET description = 'edited' WHERE id = :m",
                "UPDATE models SET availability = 'unavailable' WHERE id = :m",
                "DELETE FROM models WHERE id = :m",
            ]), m=model)
        checked_run(service)


def test_a_resync_carries_the_blocks_whose_bytes_did_not_change(engine, fake, monkeypatch):
    """40 entries, 5 blocks of 8: one changed price splits its block entry by entry (the other
    seven recognised one by one); the other four blocks are carried whole, no entry of them
    looked at. The record then holds the 5 blocks again, only the changed one's digest new."""
    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))
    run(service)
    with engine.connect() as conn:
        before = known_entries.load(conn)
    assert [b[:2] for b in before.blocks] == [[0, 8], [8, 8], [16, 8], [24, 8], [32, 8]]
    made = []
    real = known_entries._prior
    monkeypatch.setattr(known_entries, "_prior", lambda line: made.append(line[1]) or real(line))
    entries = catalogue()
    entries[5]["model_info"]["input_cost_per_token"] = 4e-6
    fake.entries = entries
    result = checked_run(service)
    assert result.updated_models == 1 and result.unchanged_models == 39
    assert sorted(made) == [f"m-{i:03d}" for i in range(8) if i != 5]
    with engine.connect() as conn:
        after = known_entries.load(conn)
    assert [b[:2] for b in after.blocks] == [b[:2] for b in before.blocks]
    assert [a[3] == b[3] for a, b in zip(after.blocks, before.blocks, strict=True)] == \
        [False, True, True, True, True]


def test_an_answer_repeating_a_recorded_stretch_plans_as_a_full_mapping(engine, fake):
    """LiteLLM answers entry 7 and the block after it twice, byte for byte, entry 7's own block
    changed (so split entry by entry): the repeat is not carried a second time but split, so
    its entries are reported as the duplicates a full mapping finds (the same fingerprint as a
    preview's), and the next sync too."""
    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))
    run(service)
    entries = catalogue()
    entries[3]["model_info"]["input_cost_per_token"] = 2e-6
    fake.entries = entries[:16] + entries[7:16] + entries[16:]
    result = checked_run(service)
    assert result.skipped_models == 9 and result.updated_models == 1
    assert checked_run(service).skipped_models == 9


def test_a_record_of_the_previous_format_means_every_entry_is_mapped_once(engine, fake, mapped):
    import orjson

    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))
    run(service)
    store_record(engine, orjson.dumps({"mapping": known_entries.MAPPING_CODE, "format": 3,
                                       "seed": 1, "entries": "[]"}))
    fake.entries = catalogue()[:-1]
    checked_run(service, mapped=mapped)
    assert len(mapped) == 39


@pytest.mark.parametrize("value", ['{"mapping": "%s", "format": 2}',
                                   '{"mapping": "%s", "format": 4, "seed": 1, "entries": [[1]], '
                                   '"blocks": []}',
                                   '{"mapping": "%s", "format": 4, "seed": 1, "entries": [], '
                                   '"blocks": [[0, 1, 5, "x"]]}',
                                   '{"mapping": "%s", "format": 4, "seed": 1, "entries": "x", '
                                   '"blocks": []}',
                                   '{"mapping": "%s", "format": 4, "seed": 1, '
                                   '"entries": [["d", "m-000", null, "s", null, "9"]], '
                                   '"blocks": [[0, 1, "9", "x"]]}',
                                   '{"mapping": "%s", "format": 4, "seed": 1, '
                                   '"entries": [["d", "m-000", null, "s", null, 9, null]], '
                                   '"blocks": []}',
                                   '{"mapping": "%s", "format": 1, "entries": "[]"}', '[1, 2]',
                                   "not json", "not zstd"])
def test_an_unreadable_record_only_means_every_entry_is_mapped(engine, fake, mapped, value):
    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))
    run(service)
    if value == "not zstd":
        execute(engine, "UPDATE model_sync_records SET body = :b", b=b"\x00garbage")
    else:
        store_record(engine, (value % known_entries.MAPPING_CODE if "%s" in value
                              else value).encode())
    fake.entries = catalogue()[1:]
    mapped.clear()
    result = checked_run(service, mapped=mapped)
    assert result.unavailable_models == 1 and len(mapped) == 39
    mapped.clear()
    fake.entries = catalogue()[2:]
    assert run(service).success and mapped == []  # recorded afresh


def reads_of_models(engine) -> list[str]:
    """The SELECTs of the models table's rows (not their versions) the engine runs from now."""
    seen: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def on_execute(_conn, _cursor, statement, *_args):
        if statement.lstrip().startswith("SELECT id, name, provider"):
            seen.append(" ".join(statement.split()))

    return seen


def test_rows_nobody_wrote_are_planned_without_reading_them(engine, fake, mapped):
    """After a sync, a row still at the version it left is planned from the record: a re-sync
    with one entry changed and one row edited reads just those two rows, and plans exactly as a
    full mapping does (PostgreSQL's ``xmin``, SQLite's trigger-kept stamps)."""
    from sync_core.mapping import KnownRow

    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))
    assert run(service).new_models == 40
    entries = catalogue()
    entries[5]["model_info"]["input_cost_per_token"] = 9e-6
    fake.entries = entries
    execute(engine, "UPDATE models SET description = 'curated' WHERE id = 'm-009'")
    reads = reads_of_models(engine)
    mapped.clear()
    result = run(service)
    assert result.success and (result.updated_models, result.unchanged_models) == (1, 39)
    assert len(reads) == 1 and "FROM models WHERE id" in reads[0]
    planned = {a.model_id: a for a in result.plan.actions}
    assert type(planned["m-001"].current) is KnownRow
    assert type(planned["m-009"].current) is not KnownRow  # edited: read (and not remapped)
    assert planned["m-009"].current.description == "curated"
    assert sorted(mapped) == ["m-005"]
    # the rows written and the row edited are recorded at their new versions: the next
    # re-sync plans every row from the record, and the same as a full mapping
    fake.entries = entries[:-1]
    reads.clear()
    mapped.clear()
    again = checked_run(service, mapped=mapped)
    assert again.unavailable_models == 1 and mapped == []
    assert sum(1 for a in again.plan.actions if type(a.current) is KnownRow) == 39


def record_writes(engine) -> list[str]:
    """The statements that write the record table, from now."""
    seen: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def on_execute(_conn, _cursor, statement, *_args):
        if "model_sync_records" in statement and not statement.lstrip().startswith("SELECT"):
            seen.append(statement)

    return seen


def test_lines_written_back_as_read_are_the_lines_a_rebuild_gives(engine, fake, monkeypatch):
    """The record writes the line of an untouched known row back as it read it (a block whose
    rows were all planned from the record, all its lines at once): the record it writes equals
    the one it writes when every line is rebuilt (versions hidden from the loaded lines), and a
    re-sync with nothing to write leaves the record row unwritten."""
    import dataclasses

    from sync_core.mapping import KnownRow

    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))
    run(service)
    execute(engine, "UPDATE models SET description = 'curated' WHERE id = 'm-009'")
    entries = catalogue()
    entries[5]["model_info"]["input_cost_per_token"] = 9e-6
    fake.entries = entries
    run(service)  # m-009 read, recorded with its stored description; m-005 written

    def stored(conn):
        return records.read_record(conn, known_entries.STATE_KEY)

    real_record = known_entries.record
    compared = []

    def record_both_ways(conn, resolved, plan, loaded, audit_id):
        hidden = known_entries.Loaded(loaded.seed, [line[:6] for line in loaded.lines],
                                      loaded.blocks)  # (no versions: nothing passes through)
        carried = tuple(dataclasses.replace(block, known=hidden.known)
                        for block in resolved.carried)
        assert carried  # (most entries were carried in blocks)
        real_record(conn, dataclasses.replace(resolved, carried=carried, still=frozenset()),
                    plan, hidden, audit_id)
        rebuilt = stored(conn)
        real_record(conn, resolved, plan, loaded, audit_id)
        compared.append((rebuilt, stored(conn)))

    monkeypatch.setattr(known_entries, "record", record_both_ways)
    entries[7]["model_info"]["input_cost_per_token"] = 7e-6
    fake.entries = entries
    result = run(service)
    assert result.success and result.updated_models == 1
    assert sum(1 for a in result.plan.actions if type(a.current) is KnownRow) == 39
    ((rebuilt, passed),) = compared
    assert passed == rebuilt
    monkeypatch.undo()
    execute(engine, "DELETE FROM model_sync_control WHERE key = 'sync.last_applied'")
    writes = record_writes(engine)
    again = run(service)  # (no fast path: its record is gone) every row known, none written
    assert again.success and not again.fast_path and again.unchanged_models == 40
    assert writes == []


def test_a_reviewed_sync_reads_every_row(engine, fake, mapped):
    """A reviewed plan is checked against the rows as a preview reads them, never against the
    record's versions."""
    from sync_core.mapping import KnownRow

    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))
    run(service)
    fake.entries = catalogue()[:-1]
    reviewed = service.preview(SyncOptions(), fresh=True)
    reads = reads_of_models(engine)
    mapped.clear()
    result = run(service, expected_fingerprint=reviewed.fingerprint)
    assert result.success and result.unavailable_models == 1
    assert len(reads) == 1 and "WHERE" not in reads[0]  # every row
    assert not any(type(a.current) is KnownRow for a in result.plan.actions)
    assert mapped == []  # (recognised entries still need no mapping: their rows match)


def test_a_row_recorded_without_a_description_is_read_not_assumed(engine, fake):
    """A row the record says has no description while its entry has one is due a fill: it is
    read, never planned from the record."""
    import orjson

    from sync_core.mapping import KnownRow

    service = SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))
    run(service)
    state = orjson.loads(stored_record(engine))
    for item in state["entries"]:
        if item[1] == "m-001":
            assert item[4] == "model 1" and len(item) == 7  # (stored description: the same)
            item.append(None)
    store_record(engine, orjson.dumps(state))
    fake.entries = catalogue()[:-1]
    result = checked_run(service)
    planned = {a.model_id: a for a in result.plan.actions}
    assert type(planned["m-002"].current) is KnownRow
    assert type(planned["m-001"].current) is not KnownRow
    assert planned["m-001"].current.description == "model 1"


# --- SQLite's row versions (migration 0009): never trusted beyond what they vouch for ---------


def _sqlite_service(sqlite_url, fake):
    from sync_core.db import create_db_engine

    engine = create_db_engine(sqlite_url)
    return engine, SyncService(engine, LiteLLMClient(fake.url, Secret(KEY)))


def _migrate_down(engine, revision):
    from alembic import command

    from sync_core import migrate

    config = migrate._config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def test_sqlite_a_write_count_started_anew_never_matches_a_recorded_version(sqlite_url, fake):
    """Going back below 0008 drops the write count; forward again it starts anew, and an edit
    made meanwhile must still be seen: the count restarts at a random offset, so no row is
    given a version an earlier sync recorded."""
    from sync_core import migrate
    from sync_core.mapping import KnownRow

    engine, service = _sqlite_service(sqlite_url, fake)
    assert run(service).new_models == 40
    for edit in (None, "UPDATE models SET input_cost_per_token = 0.5 WHERE id = 'm-001'"):
        _migrate_down(engine, "0007")
        if edit:
            execute(engine, edit)
        migrate.upgrade(engine)
        execute(engine, "DELETE FROM model_sync_control WHERE key = 'sync.last_applied'")
        result = checked_run(service)  # (as a full read plans it)
    planned = {a.model_id: a for a in result.plan.actions}
    assert planned["m-001"].action == "update" and type(planned["m-001"].current) is not KnownRow
    assert result.updated_models == 1
    engine.dispose()


def test_sqlite_a_row_without_a_version_is_read(sqlite_url, fake):
    """A row whose stamp is missing (written while the count was gone, say) is read, never
    planned from the record nor left out: an edited row is set right, a row LiteLLM does not
    serve is marked unavailable, and a stamp left for a row that is gone means nothing."""
    engine, service = _sqlite_service(sqlite_url, fake)
    assert run(service).new_models == 40
    execute(engine, "UPDATE models SET input_cost_per_token = 0.5 WHERE id = 'm-005'")
    execute(engine, "INSERT INTO models (id, name, provider) VALUES ('orphan', 'orphan', 'p')")
    execute(engine, "DELETE FROM model_row_versions WHERE id IN ('m-005', 'orphan')")
    execute(engine, "INSERT INTO model_row_versions (id, version) VALUES ('ghost', 1)")
    with engine.connect() as conn:
        versions = known_entries.row_versions(conn)
    assert "ghost" not in versions and versions["m-005"] is None and versions["orphan"] is None
    result = checked_run(service)
    assert (result.updated_models, result.unavailable_models) == (1, 1)
    assert run(service).fast_path
    engine.dispose()


def test_sqlite_without_its_triggers_trusts_no_version_and_takes_no_fast_path(sqlite_url, fake):
    """A ``models`` table rebuilt by hand loses its triggers: then no version and no fast-path
    marker is trusted, and an edit nothing stamped is still seen."""
    from sync_core.mapping import KnownRow

    engine, service = _sqlite_service(sqlite_url, fake)
    assert run(service).new_models == 40
    execute(engine, "DROP TRIGGER models_update_versioned")
    execute(engine, "UPDATE models SET input_cost_per_token = 0.5, updated_at = "
                    "(SELECT max(updated_at) FROM models) WHERE id = 'm-003'")
    result = checked_run(service)
    assert not result.fast_path and result.updated_models == 1
    assert not any(type(a.current) is KnownRow for a in result.plan.actions)
    assert not run(service).fast_path  # (not while the trigger is missing)
    engine.dispose()


def test_sqlite_a_lost_write_count_is_made_again_at_a_random_offset(sqlite_url, fake):
    """The count's row deleted: the next write makes it again, far from where it was, and
    stamps as before; the fast path works again after the next sync."""
    engine, service = _sqlite_service(sqlite_url, fake)
    assert run(service).new_models == 40
    with engine.connect() as conn:
        before = int(conn.execute(sa.text("SELECT count FROM model_sync_writes")).scalar())
    execute(engine, "DELETE FROM model_sync_writes")
    execute(engine, "UPDATE models SET input_cost_per_token = 0.5 WHERE id = 'm-007'")
    with engine.connect() as conn:
        after = int(conn.execute(sa.text("SELECT count FROM model_sync_writes")).scalar())
        versions = known_entries.row_versions(conn)
    assert abs(after - before) > 1000 and versions["m-007"] == str(after)
    result = checked_run(service)
    assert result.updated_models == 1 and run(service).fast_path
    engine.dispose()
