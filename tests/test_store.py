"""The store's bulk paths on both databases: exact round trips, errors, listeners, GC state."""

from __future__ import annotations

import dataclasses
import gc
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync_core.bulk import gc_paused
from sync_core.mapping import map_catalogue
from sync_core.store import insert_rows, read_current_rows, set_availability, update_rows
from tests.factories import entry, real_entries


def _rows():
    entries = real_entries() + [
        entry("free", input_cost_per_token=0, output_cost_per_token=0),
        entry("tiny", input_cost_per_token=1.23456789e-10, description="from LiteLLM"),
        entry("quote's \\ and \t tab", supports_vision=True),
    ]
    return list(map_catalogue(entries).rows.values())


def test_rows_read_back_exactly_as_written(engine):
    rows = _rows()
    rows[0] = dataclasses.replace(rows[0], availability="unavailable")
    with engine.begin() as conn:
        assert insert_rows(conn, rows) == len(rows)
    with engine.connect() as conn:
        current = read_current_rows(conn)
    assert set(current) == {r.id for r in rows}
    for row in rows:
        stored = current[row.id]
        assert stored == row  # every compared field (metadata excluded from ==)
        assert stored.metadata_json == row.metadata_json
        assert stored.metadata == row.metadata
    assert current["free"].input_cost_per_token == Decimal("0E-10")
    assert current["tiny"].input_cost_per_token == Decimal("1.0E-10")


def test_features_of_any_text_read_back_exactly_on_insert_and_update(engine):
    """``features`` travel as array literals: quotes, backslashes, commas, braces, spaces,
    tabs, the word NULL and the empty string all come back as they were."""
    odd = ("a\"b", "c\\d", "e,f", "{g}", "h i", "j\tk", "NULL", "", "ü✓", "l\nm", "n\ro",
           "ends\\")
    row = dataclasses.replace(_rows()[0], features=odd)
    with engine.begin() as conn:
        insert_rows(conn, [row])
    with engine.connect() as conn:
        assert read_current_rows(conn, only=[row.id])[row.id].features == odd
    moved = dataclasses.replace(row, features=odd[::-1], availability="unavailable")
    with engine.begin() as conn:
        update_rows(conn, [moved])
    with engine.connect() as conn:
        assert read_current_rows(conn, only=[row.id])[row.id].features == odd[::-1]


def test_rows_can_be_read_by_id(engine):
    rows = _rows()
    with engine.begin() as conn:
        insert_rows(conn, rows)
    wanted = [rows[0].id, "quote's \\ and \t tab", "absent"]
    with engine.connect() as conn:
        some = read_current_rows(conn, only=wanted)
        none = read_current_rows(conn, only=[])
    assert sorted(some) == sorted(wanted[:2]) and none == {}
    assert some[rows[0].id] == rows[0]


def test_insert_sets_timestamps_and_update_keeps_admin_description(engine):
    rows = {r.id: r for r in _rows()}
    with engine.begin() as conn:
        insert_rows(conn, list(rows.values()))
        conn.execute(sa.text("UPDATE models SET description = 'admin' WHERE id = 'tiny'"))
    with engine.connect() as conn:
        stamps = conn.execute(
            sa.text("SELECT count(*) FROM models WHERE created_at IS NULL OR updated_at IS NULL")
        ).scalar()
    assert stamps == 0
    changed = [
        dataclasses.replace(rows["tiny"], provider="p2", description="new upstream"),
        dataclasses.replace(rows["free"], context_length=7, description="filled"),
    ]
    with engine.begin() as conn:
        assert update_rows(conn, changed) == 2
        assert update_rows(conn, changed[:1]) == 1  # twice in one transaction
        assert set_availability(conn, ["gpt-4o"], "unavailable") == 1
    with engine.connect() as conn:
        current = read_current_rows(conn)
    assert current["tiny"].provider == "p2" and current["tiny"].description == "admin"
    assert current["free"].context_length == 7 and current["free"].description == "filled"
    assert current["gpt-4o"].availability == "unavailable"


def test_driver_errors_are_sqlalchemy_errors_and_roll_back(engine):
    rows = _rows()
    with engine.begin() as conn:
        insert_rows(conn, rows[:2])
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        insert_rows(conn, rows[2:])
        insert_rows(conn, rows[:1])  # a duplicate id
    with engine.connect() as conn:
        assert set(read_current_rows(conn)) == {rows[0].id, rows[1].id}


def test_listeners_see_every_statement(engine):
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2].split()[0]))
    with engine.begin() as conn:
        insert_rows(conn, _rows())
        update_rows(conn, _rows())
        read_current_rows(conn)
    first_words = {s.upper() for s in seen}
    assert "SELECT" in first_words
    if engine.dialect.name == "postgresql":  # new rows COPYed in; rewrites staged, then UPDATE
        assert {"COPY", "CREATE", "UPDATE"} <= first_words
    else:
        assert {"INSERT", "UPDATE"} <= first_words


def test_cyclic_garbage_made_during_a_pause_is_collected_as_usual_afterwards():
    """The pause must not promote what it saw past the collector (gc.freeze would: a server
    pausing often would keep cyclic garbage for good)."""
    import weakref

    class Node:
        pass

    refs = []
    for _ in range(50):
        with gc_paused():
            node = Node()
            node.me = node
            refs.append(weakref.ref(node))
            del node
    kept = [[] for _ in range(30_000)]  # ordinary allocations: the collector's own schedule
    assert len(kept) == 30_000
    assert sum(ref() is not None for ref in refs) == 0  # without any gc.collect()


def test_a_one_shot_process_freezes_what_a_pause_built_and_still_collects_later_garbage(
        monkeypatch):
    """``FREEZE_ON_RESUME`` (set by ``launch`` for one-shot commands): what the pause built
    leaves the collector's reach (its first pass would walk it all), while cyclic garbage made
    before the pause is collected as it starts, and garbage made after it on the collector's
    schedule."""
    import weakref

    from sync_core import bulk

    class Node:
        pass

    monkeypatch.setattr(bulk, "FREEZE_ON_RESUME", True)
    earlier = Node()
    earlier.me = earlier  # cyclic garbage from before the pause: collected, not frozen
    earlier_ref = weakref.ref(earlier)
    del earlier
    before = gc.get_freeze_count()
    try:
        with gc_paused():
            assert earlier_ref() is None
            built = [{"row": i} for i in range(1000)]
        assert gc.get_freeze_count() >= before + len(built)
        refs = []
        for _ in range(50):
            node = Node()
            node.me = node
            refs.append(weakref.ref(node))
            del node
        kept = [[] for _ in range(30_000)]
        assert len(kept) == 30_000
        assert sum(ref() is not None for ref in refs) == 0  # without any gc.collect()
    finally:
        gc.unfreeze()


def test_gc_paused_restores_the_collector_state():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


_numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=1e16, max_value=2e19), st.floats(min_value=-1e19, max_value=-1e16),
    st.sampled_from([-0.0, 0.0, 1e16, -1e16, 1.5e16, 9.2e18, -9.3e18, 1.8e19, 2e19, -1e19,
                     2.0**63, -(2.0**63), 2.0**64 - 2048, 1.2345678901234567e17,
                     2837057500605705728.0, 1e300, 5e-324, 1e-7, 1.5e-300, 123.0, 0.1]),
    st.integers(-(2**63), 2**64 - 1),
)


@settings(max_examples=25, deadline=None,  # (each example empties the table first)
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(_numbers, min_size=1, max_size=12),
       cost=st.sampled_from([-0.0, 0.0, "-0", "0", 1e-11, 3e-7]))
def test_mapped_numbers_read_back_with_the_digest_they_were_written_with(db_url, values, cost):
    """Whatever numbers an entry carries, its row reads back with the synced digest it was
    written with (JSONB keeps no -0.0 and prints large floats as integers): else every sync
    would rewrite it, and a re-sync could not trust the rows it wrote."""
    from sync_core.db import create_db_engine
    from sync_core.plan import synced_digest

    engine = create_db_engine(db_url)
    rows = list(map_catalogue([entry(
        "numbers", input_cost_per_token=cost, output_cost_per_token=cost,
        numbers=values, nested={"a": values[0], "b": [values[-1]]})]).rows.values())
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM models"))
            insert_rows(conn, rows)
        with engine.connect() as conn:
            stored = read_current_rows(conn)["numbers"]
        assert synced_digest(stored) == synced_digest(rows[0])
    finally:
        engine.dispose()
