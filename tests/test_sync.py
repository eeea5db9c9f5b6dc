"""The sync service on PostgreSQL and SQLite: writes, idempotence, atomicity, audit, lock."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa

from sync_core import audit
from sync_core.access import Actor
from sync_core.errors import LiteLLMConnectionError, PermissionDeniedError, SyncInProgressError
from sync_core.locking import current_holder, sync_lock
from sync_core.plan import SyncOptions
from sync_core.sync import SyncService
from tests.factories import StaticSource, entry, real_entries

ADMIN = Actor("admin@example.com", "admin")


def rows(engine):
    with engine.connect() as conn:
        result = conn.execute(
            sa.text(
                "SELECT id, provider, context_length, input_cost_per_token, output_cost_per_token, "
                "features, availability, description, metadata, updated_at FROM models ORDER BY id"
            )
        )
        return {r.id: r for r in result}


def audits(engine):
    return audit.list_audit(engine, action=audit.SYNC_ACTION)


def run(service, **options):
    return service.run(SyncOptions(**options), trigger="manual", actor=ADMIN)


def test_first_sync_stores_rows_by_the_mapping_rules(engine, source):
    result = run(SyncService(engine, source))
    assert result.success and result.new_models == 8 and result.total_models == 8
    stored = rows(engine)
    assert set(stored) == {e["model_name"] for e in real_entries()}
    gpt = stored["gpt-4o"]
    assert gpt.provider == "openai"
    assert gpt.context_length == 128000
    assert Decimal(str(gpt.input_cost_per_token)) == Decimal("0.0000025")
    features = (
        gpt.features if isinstance(gpt.features, list) else json.loads(gpt.features)
    )
    assert features == ["function_calling", "parallel_function_calling", "vision", "chat"]
    assert Decimal(str(stored["local-llama"].input_cost_per_token)) == 0
    assert stored["compat-mistral"].input_cost_per_token is None
    assert stored["claude-sonnet"].description == "anthropic, custom pricing"


def test_second_sync_changes_nothing_and_diff_is_empty(engine, source):
    service = SyncService(engine, source)
    run(service)
    before = rows(engine)
    result = run(service)
    assert result.success and result.new_models == result.updated_models == 0
    assert result.unchanged_models == 8
    assert rows(engine) == before
    assert not service.preview().has_changes


def test_force_update_rewrites_every_present_model(engine, source):
    service = SyncService(engine, source)
    run(service)
    result = run(service, force_update=True)
    assert result.updated_models == 8
    assert not service.preview().has_changes


def test_removed_model_is_marked_unavailable_and_never_deleted(engine, source):
    service = SyncService(engine, source)
    run(service)
    source.entries = real_entries()[:-1]
    kept = run(service, mark_unavailable=False)
    assert kept.unavailable_models == 0
    assert rows(engine)["text-embedding-3-small"].availability == "available"
    marked = run(service)
    assert marked.unavailable_models == 1
    stored = rows(engine)
    assert len(stored) == 8
    assert stored["text-embedding-3-small"].availability == "unavailable"
    source.entries = real_entries()
    assert run(service).restored_models == 1
    assert rows(engine)["text-embedding-3-small"].availability == "available"


def test_changed_price_and_admin_description(engine, source):
    service = SyncService(engine, source)
    run(service)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE models SET description = 'curated' WHERE id = 'claude-sonnet'")
        )
    source.entries = real_entries()
    source.entries[0]["model_info"]["input_cost_per_token"] = 5e-06
    source.entries[1]["model_info"]["description"] = "upstream text"
    result = run(service)
    assert result.updated_models == 2  # claude-sonnet's metadata carries the new upstream text
    changed = {a.model_id: set(a.changes) for a in result.plan.actions if a.action == "update"}
    assert changed["claude-sonnet"] == {"metadata"}
    stored = rows(engine)
    assert Decimal(str(stored["gpt-4o"].input_cost_per_token)) == Decimal("0.000005")
    assert stored["claude-sonnet"].description == "curated"


def test_data_errors_are_reported_and_the_rest_syncs(engine):
    entries = real_entries() + [
        entry("x" * 300),
        entry("pricey", input_cost_per_token=1e9),
        entry("openai/*"),
    ]
    result = run(SyncService(engine, StaticSource(entries)))
    assert result.success and result.new_models == 8
    assert len(result.errors) == 2
    assert any("pricey" in e and "overflows" in e for e in result.errors)
    assert "pricey" not in rows(engine)
    (row,) = audits(engine)
    assert row["success"] is True or row["success"] == 1
    assert row["metadata"]["counts"]["errors"] == 2


def test_failed_write_rolls_back_everything_and_is_audited(engine, source):
    service = SyncService(engine, source)
    run(service)
    before = rows(engine)
    with engine.begin() as conn:  # a database that rejects one row mid-sync
        if engine.dialect.name == "postgresql":
            conn.execute(
                sa.text(
                    "CREATE FUNCTION reject_boom() RETURNS trigger AS $$ BEGIN "
                    "IF NEW.id = 'boom' THEN RAISE EXCEPTION 'boom rejected'; END IF; RETURN NEW; END "
                    "$$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                sa.text(
                    "CREATE TRIGGER t_boom BEFORE INSERT ON models FOR EACH ROW "
                    "EXECUTE FUNCTION reject_boom()"
                )
            )
        else:
            conn.execute(
                sa.text(
                    "CREATE TRIGGER t_boom BEFORE INSERT ON models "
                    "WHEN NEW.id = 'boom' BEGIN SELECT RAISE(ABORT, 'boom rejected'); END"
                )
            )
    source.entries = real_entries()[1:] + [entry("boom"), entry("fine")]
    source.entries[0]["model_info"]["max_input_tokens"] = 1
    result = run(service)
    assert not result.success
    assert result.error_kind == "database"
    assert "boom rejected" in result.error_message
    assert result.new_models == 0
    assert rows(engine) == before  # no update, no mark_unavailable, no insert landed
    last = audits(engine)[0]
    assert not last["success"] and "boom rejected" in last["error_message"]


def test_upstream_failure_is_audited_and_changes_nothing(engine, source):
    service = SyncService(engine, source)
    run(service)
    before = rows(engine)
    source.error = LiteLLMConnectionError("Could not reach LiteLLM at http://x/model/info")
    result = run(service)
    assert not result.success and result.error_kind == "connection"
    assert rows(engine) == before
    assert [r["success"] for r in audits(engine)] == [False, True]


def test_empty_catalogue_never_marks_everything_unavailable_without_override(engine, source):
    service = SyncService(engine, source)
    run(service)
    source.entries = []
    refused = run(service)
    assert not refused.success and refused.error_kind == "guard"
    assert {r.availability for r in rows(engine).values()} == {"available"}
    allowed = run(service, allow_empty_catalogue=True)
    assert allowed.success and allowed.unavailable_models == 8


def test_stale_plan_is_refused(engine, source):
    service = SyncService(engine, source)
    reviewed = service.preview()
    source.entries = real_entries()[:-1]
    result = service.run(
        reviewed.options, trigger="manual", actor=ADMIN, expected_fingerprint=reviewed.fingerprint
    )
    assert not result.success and result.error_kind == "stale_plan"
    assert rows(engine) == {}
    fresh = service.preview()
    ok = service.run(
        fresh.options, trigger="manual", actor=ADMIN, expected_fingerprint=fresh.fingerprint
    )
    assert ok.success and ok.new_models == 7


def test_viewers_cannot_sync(engine, source):
    with pytest.raises(PermissionDeniedError):
        SyncService(engine, source).run(trigger="manual", actor=Actor("v@example.com", "viewer"))
    assert rows(engine) == {} and audits(engine) == []


def test_audit_row_holds_trigger_actor_options_counts_and_fingerprint(engine, source):
    result = SyncService(engine, source).run(
        SyncOptions(force_update=True), trigger="cli", actor=ADMIN, reason="weekly refresh"
    )
    (row,) = audits(engine)
    assert row["id"] == result.audit_id
    assert row["resource_type"] == "MODEL"
    meta = row["metadata"]
    assert meta["trigger"] == "cli" and meta["actor"] == ADMIN.name
    assert meta["reason"] == "weekly refresh"
    assert meta["options"]["forceUpdate"] is True
    assert meta["counts"]["new"] == 8
    assert meta["fingerprint"] == result.fingerprint
    assert meta["durationMs"] >= 0


def test_second_caller_is_refused_at_once_while_a_sync_runs(engine, source):
    service = SyncService(engine, source)
    with sync_lock(engine, "manual:someone@example.com"):
        holder = current_holder(engine)
        assert holder is not None and "someone@example.com" in holder[0]
        started = time.monotonic()
        with pytest.raises(SyncInProgressError) as refused:
            run(service)
        assert time.monotonic() - started < 2
        assert "someone@example.com" in str(refused.value)
    assert current_holder(engine) is None
    assert run(service).success


def test_concurrent_threads_one_runs_the_others_are_refused(engine):
    class SlowSource(StaticSource):
        def fetch_entries(self):
            time.sleep(0.5)
            return super().fetch_entries()

    service = SyncService(engine, SlowSource())
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def attempt():
        barrier.wait()
        try:
            outcomes.append("ok" if run(service).success else "failed")
        except SyncInProgressError:
            outcomes.append("busy")

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["busy"] * 5 + ["ok"]
    assert len(rows(engine)) == 8
    assert len(audits(engine)) == 1


def _count_statements(engine, service):
    count = 0

    def on_execute(*_args):
        nonlocal count
        count += 1

    sa.event.listen(engine, "before_cursor_execute", on_execute)
    try:
        assert run(service).success
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_execute)
    return count


def test_statement_count_does_not_grow_with_the_number_of_models(db_url):
    from sync_core.db import create_db_engine
    from sync_core.store import model_counts

    counts = {}
    for n in (10, 400):
        engine = create_db_engine(db_url)
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM models"))
        entries = [entry(f"model-{i:05d}") for i in range(n)]
        service = SyncService(engine, StaticSource(entries))
        first = _count_statements(engine, service)
        for e in entries[: n // 2]:
            e["model_info"]["input_cost_per_token"] = 7e-06
        service.source.entries = entries[:-3]
        second = _count_statements(engine, service)
        with engine.connect() as conn:
            assert model_counts(conn) == {"available": n - 3, "unavailable": 3, "total": n}
        counts[n] = (first, second)
        engine.dispose()
    assert counts[10] == counts[400]


def test_audit_log_filters_by_actor_in_sql_beyond_the_newest_rows(engine, source):
    service = SyncService(engine, source)
    service.run(trigger="manual", actor=Actor("old@example.com", "admin"))
    for _ in range(5):
        service.run(trigger="manual", actor=ADMIN)
    rows = audit.list_audit(engine, action=audit.SYNC_ACTION, actor="old@example.com", limit=2)
    assert [r["metadata"]["actor"] for r in rows] == ["old@example.com"]
