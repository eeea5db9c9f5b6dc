"""Admin policy on a real database (both kinds): pins, protected fields, selective sync,
suspicious changes held for approval, retention deletes, the mass-unavailable guard and plan
expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from sync_core import audit, history
from sync_core.access import Actor
from sync_core.control import approve, set_policy
from sync_core.errors import PermissionDeniedError, PlanExpiredError
from sync_core.plan import DELETE, MARK_UNAVAILABLE, UNCHANGED, UPDATE
from sync_core.policy import ModelPolicy, Selection, approval_key
from sync_core.scheduler import Scheduler
from sync_core.sync import SyncService
from tests.factories import StaticSource, real_entries

ADMIN = Actor("admin@example.com", "admin")


def stored(engine):
    with engine.connect() as conn:
        return {
            r.id: r
            for r in conn.execute(
                sa.text("SELECT id, availability, context_length, input_cost_per_token FROM models")
            )
        }


def make_due(engine):
    """Backdate the audit log so the scheduler's next tick is due."""
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE audit_logs SET created_at = :t"),
            {"t": datetime.now(UTC) - timedelta(hours=1)},
        )


def synced(engine, **kwargs):
    service = SyncService(engine, StaticSource(), **kwargs)
    assert service.run(trigger="manual", actor=ADMIN).success
    return service


def test_pinned_model_is_never_marked_unavailable(engine):
    service = synced(engine)
    set_policy(engine, "gpt-4o", ModelPolicy(pinned=True), ADMIN)
    (change,) = audit.list_audit(engine, action="MODEL_POLICY_CHANGED")  # admin actions audited
    assert change["resource_id"] == "gpt-4o" and change["new_values"]["pinned"] is True
    service.source.entries = real_entries()[1:]
    plan = service.preview()
    (pinned,) = [a for a in plan.actions if a.model_id == "gpt-4o"]
    assert pinned.action == UNCHANGED and "pinned" in pinned.reason
    assert service.run(trigger="manual", actor=ADMIN).success
    assert stored(engine)["gpt-4o"].availability == "available"
    set_policy(engine, "gpt-4o", ModelPolicy(pinned=False), ADMIN)
    assert service.preview().by_action(MARK_UNAVAILABLE)[0].model_id == "gpt-4o"


def test_protected_field_is_never_overwritten(engine):
    service = synced(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE models SET context_length = 64000 WHERE id = 'gpt-4o'"))
    set_policy(engine, "gpt-4o", ModelPolicy(protected_fields=frozenset({"context_length"})), ADMIN)
    service.source.entries[0]["model_info"]["input_cost_per_token"] = 3e-06
    (action,) = service.preview().by_action(UPDATE)
    assert action.held == {"context_length": "protected by an admin"}
    assert "input_cost_per_token" in action.changes and "context_length" not in action.changes
    service.run(trigger="manual", actor=ADMIN)
    assert stored(engine)["gpt-4o"].context_length == 64000
    assert not service.preview().has_changes
    with pytest.raises(PermissionDeniedError):
        set_policy(engine, "gpt-4o", ModelPolicy(pinned=True), Actor("v@x.org", "viewer"))
    with pytest.raises(ValueError):
        set_policy(engine, "gpt-4o", ModelPolicy(protected_fields=frozenset({"id"})), ADMIN)


def test_selective_sync_by_provider_pattern_and_hand_picked_models(engine):
    by_provider = SyncService(
        engine, StaticSource(), selection=Selection(providers=frozenset({"openai"}))
    )
    result = by_provider.run(trigger="manual", actor=ADMIN)
    assert set(stored(engine)) == {"gpt-4o", "compat-mistral", "text-embedding-3-small"}
    assert result.new_models == 3
    by_pattern = SyncService(engine, StaticSource(), selection=Selection(patterns=("^claude",)))
    by_pattern.run(trigger="manual", actor=ADMIN)
    assert "claude-sonnet" in stored(engine) and "gemini-flash" not in stored(engine)
    everything = SyncService(engine, StaticSource(real_entries()[1:]))
    picked = everything.options(only=["gemini-flash"])
    plan = everything.preview(picked)
    assert [a.model_id for a in plan.actions if a.action != UNCHANGED] == ["gemini-flash"]
    assert everything.run(picked, trigger="manual", actor=ADMIN).new_models == 1
    assert stored(engine)["gpt-4o"].availability == "available"  # not picked: not marked


def test_suspicious_change_is_held_from_scheduled_syncs_until_approved(engine):
    service = synced(engine)
    service.source.entries[0]["model_info"]["input_cost_per_token"] = 2.5e-04  # 100×
    manual_view = service.preview()
    (flagged,) = manual_view.by_action(UPDATE)
    assert "10×" in flagged.flags["input_cost_per_token"] and not flagged.held
    scheduled = service.preview(service.options(hold_suspicious=True))
    (held,) = [a for a in scheduled.actions if a.model_id == "gpt-4o"]
    assert "held until an admin approves" in held.held["input_cost_per_token"]
    assert "input_cost_per_token" not in held.changes
    scheduler = Scheduler(service, 1)
    make_due(engine)
    assert scheduler.run_once().success
    assert Decimal(str(stored(engine)["gpt-4o"].input_cost_per_token)) == Decimal("0.0000025")
    approve(
        engine,
        [approval_key("gpt-4o", "input_cost_per_token", flagged.target.input_cost_per_token)],
        ADMIN,
    )
    audit_rows = len(audit.list_audit(engine, action=audit.SYNC_ACTION))
    make_due(engine)
    assert scheduler.run_once().updated_models == 1
    assert len(audit.list_audit(engine, action=audit.SYNC_ACTION)) == audit_rows + 1
    assert Decimal(str(stored(engine)["gpt-4o"].input_cost_per_token)) == Decimal("0.00025")


def test_retention_deletes_long_unavailable_models_and_keeps_their_history(engine):
    service = synced(engine, retention_days=30)
    service.source.entries = real_entries()[2:]
    service.run(trigger="manual", actor=ADMIN)  # gpt-4o and claude-sonnet become unavailable
    set_policy(engine, "claude-sonnet", ModelPolicy(pinned=True), ADMIN)
    with engine.begin() as conn:  # 40 days ago (past the updated_at trigger on PostgreSQL)
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            conn.execute(sa.text("ALTER TABLE models DISABLE TRIGGER update_models_updated_at"))
        conn.execute(
            sa.text("UPDATE models SET updated_at = :t WHERE availability = 'unavailable'"),
            {"t": datetime.now(UTC) - timedelta(days=40)},
        )
        if postgres:
            conn.execute(sa.text("ALTER TABLE models ENABLE TRIGGER update_models_updated_at"))
    plan = service.preview()
    assert [a.model_id for a in plan.by_action(DELETE)] == ["gpt-4o"]
    assert plan.summary[DELETE] == 1
    result = service.run(trigger="manual", actor=ADMIN)
    assert result.deleted_models == 1 and result.to_dict()["deletedModels"] == 1
    assert "gpt-4o" not in stored(engine) and "claude-sonnet" in stored(engine)
    history.record_changes(engine, result)  # the runtime's listener does this after each sync
    deleted = history.model_history(engine, "gpt-4o")[0]
    assert deleted["action"] == DELETE and deleted["fields"]["context_length"]["old"] == 128000


def test_marking_most_models_unavailable_needs_the_number_typed(engine):
    service = synced(engine)
    service.source.entries = real_entries()[:2]
    refused = service.run(trigger="manual", actor=ADMIN)
    assert (
        not refused.success
        and refused.error_kind == "guard"
        and "giving the number 6" in refused.error_message
    )
    assert {r.availability for r in stored(engine).values()} == {"available"}
    scheduled = Scheduler(service, 1)
    make_due(engine)
    assert "scheduled syncs refuse" in scheduled.run_once().error_message
    confirmed = service.run(trigger="manual", actor=ADMIN, confirm_unavailable=6)
    assert confirmed.success and confirmed.unavailable_models == 6


def test_a_reviewed_plan_expires(engine):
    service = SyncService(engine, StaticSource(), plan_ttl_s=900)
    plan = service.preview()
    with pytest.raises(PlanExpiredError):
        service.run(
            plan.options,
            trigger="manual",
            actor=ADMIN,
            expected_fingerprint=plan.fingerprint,
            reviewed_at=datetime.now(UTC) - timedelta(minutes=16),
        )
    ok = service.run(
        plan.options,
        trigger="manual",
        actor=ADMIN,
        expected_fingerprint=plan.fingerprint,
        reviewed_at=datetime.now(UTC),
    )
    assert ok.success


def test_retention_deletes_nothing_while_other_tables_reference_models(engine):
    service = synced(engine, retention_days=1)
    service.source.entries = real_entries()[1:]
    service.run(trigger="manual", actor=ADMIN)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE subscriptions (id INTEGER PRIMARY KEY, "
                             "model_id VARCHAR(255) REFERENCES models(id))"))
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("ALTER TABLE models DISABLE TRIGGER update_models_updated_at"))
        conn.execute(sa.text("UPDATE models SET updated_at = :t WHERE id = 'gpt-4o'"),
                     {"t": datetime.now(UTC) - timedelta(days=40)})
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("ALTER TABLE models ENABLE TRIGGER update_models_updated_at"))
    assert service.preview().by_action(DELETE) == []
    assert service.run(trigger="manual", actor=ADMIN).success
    assert "gpt-4o" in stored(engine)
