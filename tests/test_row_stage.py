"""Mapped rows streamed into the sync's transaction (PostgreSQL): they reach the server while
later entries are still being mapped, the plan writes exactly what it writes without the stage,
and a failure on the way leaves the previous rows as they were."""

from __future__ import annotations

import contextlib
import threading
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync_core import known_entries, mapping, row_stage
from sync_core.access import SYSTEM
from sync_core.config import Secret
from sync_core.db import create_db_engine
from sync_core.litellm import LiteLLMClient
from sync_core.plan import SyncOptions, build_plan
from sync_core.policy import ModelPolicy
from sync_core.row_stage import RowStage
from sync_core.store import apply_plan, insert_rows, read_current_rows
from sync_core.sync import SyncService
from tests.factories import entry
from tests.fake_litellm import FakeLiteLLM

KEY = "sk-row-stage"


def catalogue(n: int = 30) -> list[dict]:
    return [entry(f"m-{i:03d}", input_cost_per_token=(i + 1) * 1e-7,
                  description=f"model {i}" if i % 3 else None) for i in range(n)]


@pytest.fixture
def pg_engine(pg_url):
    engine = create_db_engine(pg_url)
    yield engine
    engine.dispose()


def run(service, options=None):
    return service.run(options or SyncOptions(), trigger="manual", actor=SYSTEM)


def stored(engine) -> dict[str, tuple]:
    """Every written column of every row (the timestamps apart), as the database holds them."""
    with engine.connect() as conn:
        rows = read_current_rows(conn)
    return {i: (r, r.metadata_json) for i, r in rows.items()}


def test_rows_reach_the_server_while_later_entries_are_still_mapped(pg_engine, monkeypatch):
    """The stage's COPY starts as the first row is mapped: the server parses rows while the
    sync maps the rest. Nothing is copied straight into ``models``."""
    mapped: list[str] = []
    real = mapping.map_entry

    def counting(raw):
        mapped.append(raw["model_name"])
        return real(raw)

    monkeypatch.setattr(mapping, "map_entry", counting)
    statements: list[tuple[str, int]] = []
    sa.event.listen(pg_engine, "before_cursor_execute",
                    lambda conn, cur, statement, *a: statements.append((statement, len(mapped))))
    with FakeLiteLLM(catalogue(), key=KEY) as fake:
        result = run(SyncService(pg_engine, LiteLLMClient(fake.url, Secret(KEY))))
    assert result.success and result.new_models == 30
    copies = [(s, at) for s, at in statements if s.startswith("COPY")]
    assert [s.split()[1].startswith("_litemaas_stage_") for s, _ in copies] == [True]
    assert copies[0][1] == 1  # begun with one entry mapped, of thirty
    assert len(stored(pg_engine)) == 30


def test_a_sqlite_sync_writes_without_a_stage(sqlite_url):
    engine = create_db_engine(sqlite_url)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda conn, cur, statement, *a: statements.append(statement))
    with FakeLiteLLM(catalogue(), key=KEY) as fake:
        result = run(SyncService(engine, LiteLLMClient(fake.url, Secret(KEY))))
    engine.dispose()
    assert result.success and result.new_models == 30
    assert not [s for s in statements if "_litemaas_stage_" in s]


def test_a_database_failure_while_rows_stream_leaves_the_previous_rows(pg_engine, monkeypatch):
    """The sync's connection dies mid-COPY: the sync fails as a database error (not an
    unexpected one), the rows of the sync before are intact, and the next sync succeeds."""
    with FakeLiteLLM(catalogue(), key=KEY) as fake:
        service = SyncService(pg_engine, LiteLLMClient(fake.url, Secret(KEY)))
        assert run(service).success
        before = stored(pg_engine)
        fake.entries = [entry(f"m-{i:03d}", input_cost_per_token=5e-6) for i in range(40)]
        real_add = RowStage.add
        added: list[int] = []

        def dying(stage, row):
            added.append(1)
            if len(added) == 5:
                pid = stage._conn.connection.dbapi_connection.info.backend_pid
                with pg_engine.connect() as other:
                    other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            return real_add(stage, row)

        monkeypatch.setattr(RowStage, "add", dying)
        failed = run(service, SyncOptions(force_update=True))
        assert not failed.success
        assert failed.error_kind == "database", failed.error_message
        assert stored(pg_engine) == before
        monkeypatch.setattr(RowStage, "add", real_add)
        again = run(service)
    assert again.success and (again.new_models, again.updated_models) == (10, 30)


def test_an_answer_that_breaks_off_after_rows_streamed_writes_nothing(pg_engine):
    """Entries map and stream, then the answer turns out not to be JSON: the COPY is abandoned
    with the transaction and the sync fails as a LiteLLM data error."""
    with FakeLiteLLM(catalogue(), key=KEY) as fake:
        service = SyncService(pg_engine, LiteLLMClient(fake.url, Secret(KEY)))
        assert run(service).success
        before = stored(pg_engine)
        body = fake.catalogue_body().replace(b'"m-020"', b'"m-020')  # a string left open
        fake.body = body
        failed = run(service, SyncOptions(force_update=True))
    assert not failed.success and "JSON" in (failed.error_message or "")
    assert stored(pg_engine) == before


# --- the stage writes what the plan says, exactly as the direct writes do ------------------------

FIELDS = ("description", "input_cost_per_token", "context_length", "supports_vision",
          "availability")


@st.composite
def scenarios(draw):
    n = draw(st.integers(1, 8))
    served = [entry(f"m-{i}", input_cost_per_token=(i + 1) * 1e-7,
                    description=draw(st.sampled_from([None, f"about {i}"])),
                    max_input_tokens=draw(st.sampled_from([8192, 128000])))
              for i in range(n)]
    edits = draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from(FIELDS)),
                          max_size=6))
    upstream = [dict(e, model_info=dict(e["model_info"])) for e in served]
    for e in upstream:
        if draw(st.booleans()):
            e["model_info"]["input_cost_per_token"] = draw(st.sampled_from([3e-7, 9e-6]))
        if draw(st.booleans()):
            e["model_info"]["description"] = draw(st.sampled_from([None, "new words"]))
    upstream += [entry(f"new-{i}") for i in range(draw(st.integers(0, 3)))]
    upstream += [dict(upstream[0], model_info=dict(upstream[0]["model_info"],
                                                   id="dup-deployment"))] * draw(
        st.integers(0, 1))
    gone = draw(st.sets(st.integers(0, n - 1), max_size=2))
    upstream = [e for e in upstream if e["model_name"] not in {f"m-{i}" for i in gone}]
    options = SyncOptions(
        force_update=draw(st.booleans()),
        conflict_resolution=draw(st.sampled_from(["litellm_wins", "merge", "database_wins"])),
        hold_suspicious=draw(st.booleans()),
    )
    policies = {f"m-{i}": ModelPolicy(protected_fields=frozenset(draw(
        st.sets(st.sampled_from(["description", "input_cost_per_token", "context_length"])))))
        for i in draw(st.sets(st.integers(0, n - 1), max_size=3))}
    return served, edits, upstream, options, policies


def _edit(conn, model_id: str, field: str) -> None:
    value = {"description": None, "input_cost_per_token": "0.0000042", "context_length": 7,
             "supports_vision": True, "availability": "unavailable"}[field]
    if field == "description":  # an admin clears it, or writes their own
        value = None if hash(model_id) % 2 else "the admin's words"
    conn.execute(sa.text(f"UPDATE models SET {field} = :v WHERE id = :id"),
                 {"v": value, "id": model_id})


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_the_stage_writes_what_the_direct_writes_write(pg_engine, scenario):
    """Whatever the rows, the admin's edits, the options and the policies: applying a plan from
    the stage leaves every row exactly as applying it directly does (mapped rows the plan
    changed on the way, such as a merge or a protected empty description, included)."""
    served, edits, upstream, options, policies = scenario
    with pg_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM models"))
        insert_rows(conn, list(mapping.map_catalogue(served).rows.values()))
        for index, field in edits:
            _edit(conn, f"m-{index}", field)
    outcomes = []
    for staged in (False, True):
        with pg_engine.connect() as conn, conn.begin() as transaction:
            stage = RowStage(conn) if staged else None
            with stage.mapping() if stage else contextlib.nullcontext():
                catalogue = mapping.map_catalogue(upstream, stage.add if stage else None)
            plan = build_plan(catalogue, read_current_rows(conn), options, policies=policies)
            counts = apply_plan(conn, plan, stage)
            rows = read_current_rows(conn)
            outcomes.append((dict(counts), {i: (r, r.metadata_json) for i, r in rows.items()},
                             plan.summary))
            transaction.rollback()
    assert outcomes[1] == outcomes[0]


def test_rows_the_plan_changed_are_staged_as_written(pg_engine):
    """A target that differs from its mapped row by the description alone (the database's
    kept, or an admin's emptied one that is protected) is written from the staged row with its
    description replaced, not staged again; one that differs otherwise (merge kept an admin's
    price) is staged as itself. Every row ends as its target."""
    served = [entry(n, description="from LiteLLM", input_cost_per_token=1e-7) for n in "abcd"]
    with pg_engine.begin() as conn:
        insert_rows(conn, list(mapping.map_catalogue(served).rows.values()))
        conn.execute(sa.text("UPDATE models SET description = NULL WHERE id = 'a'"))
        conn.execute(sa.text("UPDATE models SET description = 'mine' WHERE id = 'b'"))
        conn.execute(sa.text("UPDATE models SET input_cost_per_token = 0.5 WHERE id = 'd'"))
    upstream = [entry(name, description="from LiteLLM", input_cost_per_token=1e-7,
                      max_input_tokens=9) for name in "abc"]
    upstream.append(entry("d", description="from LiteLLM", input_cost_per_token=2e-7))
    policies = {"a": ModelPolicy(protected_fields=frozenset({"description"})),
                "d": ModelPolicy(protected_fields=frozenset({"input_cost_per_token"}))}
    statements: list[str] = []
    with pg_engine.connect() as conn, conn.begin():
        stage = RowStage(conn)
        with stage.mapping():
            catalogue = mapping.map_catalogue(upstream, stage.add)
        plan = build_plan(catalogue, read_current_rows(conn), policies=policies)
        rewrites = {a.model_id: a for a in plan.actions if a.action == "update"}
        assert rewrites["a"].target.description is None
        assert rewrites["b"].target.description == "mine"
        assert rewrites["d"].target.input_cost_per_token == Decimal("0.5")
        sa.event.listen(conn, "before_cursor_execute",
                        lambda c, cur, statement, *a: statements.append(statement))
        assert apply_plan(conn, plan, stage)["updated"] == 4
        rows = read_current_rows(conn)
    for name in "abcd":
        assert rows[name] == rewrites[name].target
    assert rows["c"].context_length == 9 and rows["a"].description is None
    copies = [s for s in statements if s.startswith("COPY")]
    assert len(copies) == 1  # d, staged as itself; a and b from their mapped rows
    assert sum("SET description = d.description" in s for s in statements) == 1


# --- the transaction around it ---------------------------------------------------------------


def _database_setting(engine, name: str, value: str) -> None:
    database = engine.url.database
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            sa.text(f'ALTER DATABASE "{database}" SET {name} = \'{value}\''))
    engine.dispose()  # (new sessions take the setting)


def _slow_mapping(monkeypatch, seconds: float, on_entry=None):
    real = mapping.map_entry
    seen: list[str] = []

    def slow(raw):
        seen.append(raw["model_name"])
        if on_entry is not None:
            on_entry(len(seen))
        time.sleep(seconds)
        return real(raw)

    monkeypatch.setattr(mapping, "map_entry", slow)


def test_a_statement_timeout_does_not_cut_a_long_mapping_and_holds_after_it(pg_engine,
                                                                           monkeypatch):
    """The stage's COPY is open while the sync maps (here 0.6 s, twice the 300 ms
    ``statement_timeout``): the timeout is lifted for it alone and holds again afterwards."""
    _database_setting(pg_engine, "statement_timeout", "300ms")
    _slow_mapping(monkeypatch, 0.02)
    seen: list[str] = []
    real_resolve = known_entries.resolve

    def resolve(conn, *args, **kwargs):
        seen.append(conn.exec_driver_sql("SHOW statement_timeout").scalar())
        return real_resolve(conn, *args, **kwargs)

    monkeypatch.setattr(known_entries, "resolve", resolve)
    with FakeLiteLLM(catalogue(), key=KEY) as fake:
        result = run(SyncService(pg_engine, LiteLLMClient(fake.url, Secret(KEY))))
    assert result.success, result.error_message
    assert result.new_models == 30 and seen == ["300ms"]


def test_a_failure_while_rows_are_staged_after_the_mapping_ends_the_sync(pg_engine,
                                                                         monkeypatch):
    """A row staged for the write (a target the plan changed) fails to format: the COPY is
    aborted before the rollback (which would otherwise wait on the connection for good), the
    sync fails with its audit row, and the lock is free for the next one."""
    with FakeLiteLLM(catalogue(), key=KEY) as fake:
        service = SyncService(pg_engine, LiteLLMClient(fake.url, Secret(KEY)))
        assert run(service).success
        with pg_engine.begin() as conn:  # both change the price: merge keeps the admin's
            conn.execute(sa.text("UPDATE models SET input_cost_per_token = 0.0000042 "
                                 "WHERE id = 'm-001'"))
        fake.entries = [entry(f"m-{i:03d}", input_cost_per_token=5e-6) for i in range(30)]
        real_record = row_stage.pg_record
        merge = SyncOptions(conflict_resolution="merge")

        def failing(row):
            if row.input_cost_per_token == Decimal("0.0000042"):
                raise RuntimeError("a bug while formatting a row")
            return real_record(row)

        monkeypatch.setattr(row_stage, "pg_record", failing)
        outcome: list = []
        worker = threading.Thread(target=lambda: outcome.append(run(service, merge)),
                                  daemon=True)
        worker.start()
        worker.join(30)
        assert not worker.is_alive(), "the sync hung"
        failed = outcome[0]
        assert not failed.success and failed.audit_id is not None
        monkeypatch.setattr(row_stage, "pg_record", real_record)
        again = run(service, merge)
    assert again.success and again.updated_models == 30
    assert stored(pg_engine)["m-001"][0].input_cost_per_token == Decimal("0.0000042")


def test_under_repeatable_read_nothing_is_staged_and_edits_during_the_mapping_are_planned(
        pg_engine, monkeypatch):
    """With ``default_transaction_isolation = 'repeatable read'`` staging would take the
    transaction's snapshot at the first row, before the mapping: an admin's edit committed
    while the sync maps would then fail its update. Nothing is staged, and the sync plans the
    edit as it would have."""
    with FakeLiteLLM(catalogue(), key=KEY) as fake:
        service = SyncService(pg_engine, LiteLLMClient(fake.url, Secret(KEY)))
        assert run(service).success
        _database_setting(pg_engine, "default_transaction_isolation", "repeatable read")

        def admin_edits(count: int) -> None:
            if count == 5:
                with pg_engine.begin() as other:
                    other.execute(sa.text("UPDATE models SET context_length = 7 "
                                          "WHERE id = 'm-020'"))

        _slow_mapping(monkeypatch, 0, admin_edits)
        statements: list[str] = []
        sa.event.listen(pg_engine, "before_cursor_execute",
                        lambda conn, cur, statement, *a: statements.append(statement))
        fake.entries = [entry(f"m-{i:03d}", input_cost_per_token=5e-6) for i in range(30)]
        result = run(service, SyncOptions(force_update=True))
    assert result.success, result.error_message
    assert not [s for s in statements if "_litemaas_stage_" in s]
    assert stored(pg_engine)["m-020"][0].context_length != 7  # LiteLLM's, rewritten


def test_under_repeatable_read_the_transaction_waits_for_the_mapping(pg_engine, monkeypatch):
    """Nothing staged, nothing held open: the transaction begins after the mapping, so an
    ``idle_in_transaction_session_timeout`` shorter than the mapping does not end it."""
    _database_setting(pg_engine, "default_transaction_isolation", "repeatable read")
    _database_setting(pg_engine, "idle_in_transaction_session_timeout", "300ms")
    _slow_mapping(monkeypatch, 0.02)
    with FakeLiteLLM(catalogue(), key=KEY) as fake:
        result = run(SyncService(pg_engine, LiteLLMClient(fake.url, Secret(KEY))))
    assert result.success, result.error_message
    assert result.new_models == 30


def test_a_description_an_admin_empties_during_the_sync_is_left_as_the_plan_says(
        pg_engine, monkeypatch):
    """The plan keeps the admin's description; the admin empties it after the rows were read
    and before the update: the row still holds the plan's target (as the direct write leaves
    it), not LiteLLM's text, so the record of known entries tells the truth."""
    from sync_core import sync as sync_module

    with FakeLiteLLM(catalogue(), key=KEY) as fake:
        service = SyncService(pg_engine, LiteLLMClient(fake.url, Secret(KEY)))
        assert run(service).success
        with pg_engine.begin() as conn:
            conn.execute(sa.text("UPDATE models SET description = 'admin words' "
                                 "WHERE id = 'm-004'"))
        real_apply = sync_module.apply_plan

        def racing(conn, plan, stage=None):
            with pg_engine.begin() as other:
                other.execute(sa.text("UPDATE models SET description = NULL "
                                      "WHERE id = 'm-004'"))
            return real_apply(conn, plan, stage)

        monkeypatch.setattr(sync_module, "apply_plan", racing)
        fake.entries = [entry(f"m-{i:03d}", input_cost_per_token=5e-6,
                              description=f"model {i}") for i in range(30)]
        result = run(service)
        monkeypatch.setattr(sync_module, "apply_plan", real_apply)
        assert result.success
        target = next(a.target for a in result.plan.actions if a.model_id == "m-004")
        assert target.description == "admin words"
        assert stored(pg_engine)["m-004"][0].description == "admin words"
        assert not service.preview(SyncOptions(), fresh=True).has_changes
