"""Health: reachability, counts, pending changes, timeliness and data-integrity checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from sync_core.access import SYSTEM
from sync_core.health import check_health, integrity_checks
from sync_core.litellm import LiteLLMClient
from sync_core.mapping import map_catalogue
from sync_core.store import read_current_rows
from sync_core.sync import SyncService
from tests.factories import StaticSource, entry, real_entries


class ProbedSource(StaticSource):
    def __init__(self, entries=None, reachable=True):
        super().__init__(entries)
        self.reachable = reachable

    def probe(self):
        from sync_core.litellm import ProbeResult

        if self.reachable:
            return ProbeResult(True, 3.0, None, None, "closed", "test")
        return ProbeResult(False, None, "connection", "Could not reach LiteLLM", "open", "test")


def test_fresh_database_warns_that_no_sync_ran(engine):
    report = check_health(SyncService(engine, ProbedSource()))
    assert report.status == "warning"
    assert report.sync_timeliness == "never"
    assert report.pending_changes == 8 and report.litellm_models == 8
    api = report.to_api()
    assert api["modelsCount"] == 0 and api["litellmConnected"] is True and api["lastSync"] is None


def test_after_a_sync_counts_and_last_sync_are_reported(engine):
    service = SyncService(engine, ProbedSource())
    service.run(trigger="manual", actor=SYSTEM)
    report = check_health(service, sync_interval_s=60)
    assert report.counts == {"available": 8, "unavailable": 0, "total": 8}
    assert report.pending_changes == 0
    assert report.sync_timeliness == "on_time"
    assert report.last_success_age_s is not None and report.last_success_age_s < 60
    late = check_health(service, sync_interval_s=60, now=datetime.now(UTC) + timedelta(hours=1))
    assert late.sync_timeliness == "late" and late.status == "warning"


def test_unreachable_litellm_is_an_error_but_database_counts_still_come(engine):
    service = SyncService(engine, ProbedSource())
    service.run(trigger="manual", actor=SYSTEM)
    service.source = ProbedSource(reachable=False)
    report = check_health(service)
    assert report.status == "error"
    assert report.counts["total"] == 8
    assert report.to_api()["litellmConnected"] is False
    assert any("unreachable" in issue for issue in report.issues)


def test_last_sync_failed_is_reported(engine):
    source = ProbedSource()
    service = SyncService(engine, source)
    service.run(trigger="manual", actor=SYSTEM)
    source.entries = []
    service.run(trigger="manual", actor=SYSTEM)  # refused by the empty-catalogue guard
    report = check_health(service)
    assert report.sync_timeliness == "error"
    assert any("Last sync failed" in issue for issue in report.issues)


def test_unreachable_database_is_an_error_not_an_exception():
    from sync_core.db import create_db_engine

    engine = create_db_engine("postgresql://postgres@127.0.0.1:1/none")
    report = check_health(SyncService(engine, ProbedSource()))
    assert report.status == "error" and not report.database_ok
    assert report.to_api()["details"]["database"]["ok"] is False


def test_integrity_checks_name_the_offending_models(engine):
    entries = real_entries() + [
        entry("noprovider", "noslash", litellm_provider=None),
        entry("x", deployment_id="d1"),
        entry("x", deployment_id="d2"),
        entry("openai/*"),
    ]
    service = SyncService(engine, ProbedSource(entries))
    service.run(trigger="manual", actor=SYSTEM)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE models SET supports_vision = true WHERE id = 'gpt-4o-mini'"))
        conn.execute(sa.text("UPDATE models SET supports_vision = true WHERE id = 'local-llama'"))
    with engine.connect() as conn:
        rows = read_current_rows(conn)
    found = {i.check: i for i in integrity_checks(rows.values(), map_catalogue(entries))}
    assert found["unknown_provider"].model_ids == ("noprovider",)
    assert "compat-mistral" in found["missing_price"].model_ids
    assert found["features_mismatch"].model_ids == ("local-llama",)
    assert found["upstream_duplicates"].model_ids == ("x",)
    assert found["upstream_wildcards"].model_ids == ("openai/*",)
    report = check_health(service)
    assert "Models with an unknown provider (1)" in report.issues


def test_invalid_availability_and_negative_price_are_errors(pg_url):
    from sync_core.db import create_db_engine

    engine = create_db_engine(pg_url)
    service = SyncService(engine, ProbedSource())
    service.run(trigger="manual", actor=SYSTEM)
    with engine.begin() as conn:  # a LiteMaaS database without our CHECK constraint
        conn.execute(
            sa.text("ALTER TABLE models DROP CONSTRAINT IF EXISTS models_availability_check")
        )
        conn.execute(sa.text("UPDATE models SET availability = 'deprecated' WHERE id = 'gpt-4o'"))
        conn.execute(
            sa.text("UPDATE models SET input_cost_per_token = -1 WHERE id = 'gemini-flash'")
        )
    report = check_health(service)
    checks = {i.check: i.model_ids for i in report.integrity}
    assert checks["invalid_availability"] == ("gpt-4o",)
    assert checks["negative_price"] == ("gemini-flash",)
    assert report.status == "error"
    engine.dispose()


def test_live_client_probe_feeds_health(engine):
    client = LiteLLMClient("http://127.0.0.1:9", timeout=0.5, sleep=lambda s: None)
    report = check_health(SyncService(engine, client))
    assert report.litellm is not None and not report.litellm.reachable
    assert report.litellm.error_kind == "connection"
    assert report.status == "error"
