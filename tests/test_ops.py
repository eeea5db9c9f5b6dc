"""Operations: Prometheus metrics move with syncs, logs are one line (JSON on request) and
never carry a secret, and `doctor` passes a healthy set-up and fails broken ones."""

from __future__ import annotations

import io
import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sync_core.access import SYSTEM
from sync_core.cli import main
from sync_core.config import Settings
from sync_core.doctor import FAIL, PASS, WARN, run_doctor
from sync_core.errors import LiteLLMServerError
from sync_core.logs import configure_logging
from sync_core.runtime import build_runtime
from tests.factories import StaticSource, real_entries
from tests.fake_litellm import FakeLiteLLM, status


def samples(runtime):
    found = {}
    for family in text_string_to_metric_families(runtime.metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_move_with_syncs(sqlite_url):
    source = StaticSource()
    runtime = build_runtime(Settings.from_env({"DATABASE_URL": sqlite_url}), source=source)
    before = samples(runtime)
    assert before[("litemaas_models", (("availability", "available"),))] == 0
    runtime.service.run(trigger="manual", actor=SYSTEM)
    source.error = LiteLLMServerError("LiteLLM at http://x answered HTTP 503")
    runtime.service.run(trigger="schedule", actor=SYSTEM)
    after = samples(runtime)
    assert after[("litemaas_sync_runs_total", (("outcome", "success"), ("trigger", "manual")))] == 1
    assert (
        after[("litemaas_sync_runs_total", (("outcome", "server"), ("trigger", "schedule")))] == 1
    )
    assert after[("litemaas_models", (("availability", "available"),))] == 8
    assert after[("litemaas_sync_last_success_timestamp_seconds", ())] > 1.7e9
    assert after[("litemaas_sync_model_changes_total", (("action", "insert"),))] == 8
    assert after[("litemaas_sync_duration_seconds_count", (("trigger", "manual"),))] == 1
    runtime.close()


def test_litellm_requests_and_breaker_are_exported(sqlite_url):
    with FakeLiteLLM(real_entries(), key="sk-metrics-key") as fake:
        settings = Settings.from_env(
            {
                "DATABASE_URL": sqlite_url,
                "LITELLM_API_URL": fake.url,
                "LITELLM_API_KEY": "sk-metrics-key",
            }
        )
        runtime = build_runtime(settings)
        runtime.source._sleep = lambda s: None  # no real backoff in tests
        assert runtime.service.run(trigger="manual", actor=SYSTEM).success
        fake.default = status(503)
        for _ in range(5):
            runtime.service.run(trigger="manual", actor=SYSTEM)
        found = samples(runtime)
    assert found[("litemaas_litellm_requests_total", (("outcome", "ok"),))] == 1
    assert found[("litemaas_litellm_requests_total", (("outcome", "server"),))] == 15
    assert found[("litemaas_litellm_circuit_breaker_state", ())] == 2
    runtime.close()


def test_json_logs_are_one_line_each_and_redact_secrets():
    stream = io.StringIO()
    configure_logging("DEBUG", "json", secrets=["sk-very-secret-123"], stream=stream)
    try:
        logging.getLogger("sync_core.test").info("token sk-very-secret-123 here", extra={"n": 3})
        logging.getLogger("sync_core.test").debug("multi\nline")
    finally:
        configure_logging("WARNING", "text")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["level"] == "info" and first["logger"] == "sync_core.test" and first["n"] == 3
    assert "sk-very-secret-123" not in stream.getvalue() and "***" in first["message"]
    assert json.loads(lines[1])["message"] == "multi\nline"


def test_sync_log_events_at_their_levels(sqlite_url, caplog):
    source = StaticSource(real_entries() + [{"model_name": "x" * 300}])
    runtime = build_runtime(Settings.from_env({"DATABASE_URL": sqlite_url}), source=source)
    with caplog.at_level(logging.DEBUG, logger="sync_core"):
        runtime.service.run(trigger="manual", actor=SYSTEM)
        source.error = LiteLLMServerError("LiteLLM at http://x answered HTTP 500")
        runtime.service.run(trigger="manual", actor=SYSTEM)
    levels = {(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records}
    assert ("INFO", "sync started") in levels
    assert ("WARNING", "sync completed with errors") in levels
    assert ("ERROR", "sync failed (server)") in levels
    assert any(
        r.levelname == "DEBUG" and "gpt-4o: insert" in r.getMessage() for r in caplog.records
    )
    runtime.close()


def test_doctor_passes_a_healthy_setup_and_fails_broken_ones(
    pg_url, empty_pg_url, capsys, monkeypatch
):
    with FakeLiteLLM(real_entries(), key="sk-doctor-key") as fake:
        good = {
            "DATABASE_URL": pg_url,
            "LITELLM_API_URL": fake.url,
            "LITELLM_API_KEY": "sk-doctor-key",
            "SYNC_API_TOKEN": "t" * 32,
        }
        checks = run_doctor(build_runtime(Settings.from_env(good)))
        assert {c.name: c.status for c in checks if c.status == FAIL} == {}
        assert {c.name for c in checks if c.status == PASS} >= {
            "database",
            "migrations",
            "litellm",
            "pool size",
            "temporary tables",
        }

        broken = {
            "wrong key": {**good, "LITELLM_API_KEY": "sk-wrong"},
            "unmigrated": {**good, "DATABASE_URL": empty_pg_url},
            "no database": {**good, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"},
            "oversized pool": {**good, "DB_MAX_CONNECTIONS": "500"},
        }
        expected = {
            "wrong key": "litellm",
            "unmigrated": "migrations",
            "no database": "database",
            "oversized pool": "pool size",
        }
        for case, env in broken.items():
            failed = {
                c.name
                for c in run_doctor(build_runtime(Settings.from_env(env)))
                if c.status == FAIL
            }
            assert expected[case] in failed, case
        for key, value in {**good, "LITELLM_API_KEY": "sk-wrong"}.items():
            monkeypatch.setenv(key, value)
        assert main(["doctor", "--json"]) == 1
        report = json.loads(capsys.readouterr().out)
        assert report["ok"] is False and "sk-wrong" not in json.dumps(report)
    monkeypatch.setenv("LITELLM_API_URL", "http://127.0.0.1:9")
    monkeypatch.setattr("sync_core.litellm.time.sleep", lambda s: None)
    assert main(["doctor"]) == 1
    assert "connection" in capsys.readouterr().out


def test_doctor_fails_a_role_that_may_not_create_temporary_tables(pg_url):
    """A sync stages its rows in a temporary table: a role without TEMPORARY cannot sync, and
    the doctor says so before the first sync does."""
    import uuid

    import sqlalchemy as sa

    from sync_core.access import SYSTEM

    role = f"lms_no_temp_{uuid.uuid4().hex[:8]}"
    admin = build_runtime(Settings.from_env({"DATABASE_URL": pg_url}))
    with admin.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        database = conn.execute(sa.text("SELECT current_database()")).scalar()
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(sa.text(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}"))
        conn.execute(sa.text(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}"))
        conn.execute(sa.text(f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC'))
    try:
        with FakeLiteLLM(real_entries(), key=None) as fake:
            env = {"DATABASE_URL": pg_url.replace("postgres@", f"{role}@", 1),
                   "LITELLM_API_URL": fake.url}
            runtime = build_runtime(Settings.from_env(env))
            checks = {c.name: c for c in run_doctor(runtime)}
            assert checks["temporary tables"].status == FAIL
            assert "GRANT TEMPORARY" in checks["temporary tables"].detail
            refused = runtime.service.run(trigger="manual", actor=SYSTEM)
            assert not refused.success and refused.error_kind == "database"
            runtime.close()
            with admin.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                    sa.text(f'GRANT TEMPORARY ON DATABASE "{database}" TO PUBLIC'))
            runtime = build_runtime(Settings.from_env(env))
            checks = {c.name: c for c in run_doctor(runtime)}
            assert checks["temporary tables"].status == PASS
            assert runtime.service.run(trigger="manual", actor=SYSTEM).success
            runtime.close()
    finally:
        with admin.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(sa.text(f"DROP OWNED BY {role}"))
            conn.execute(sa.text(f"DROP ROLE {role}"))
        admin.close()


def test_doctor_warns_when_sqlites_write_triggers_are_gone(sqlite_url):
    """SQLite's row versions and write count need their triggers; a table rebuilt by hand
    loses them, which the doctor names."""
    import sqlalchemy as sa

    runtime = build_runtime(Settings.from_env({"DATABASE_URL": sqlite_url}))
    checks = {c.name: c for c in run_doctor(runtime)}
    assert checks["write triggers"].status == PASS
    with runtime.engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER models_update_versioned"))
    checks = {c.name: c for c in run_doctor(runtime)}
    assert checks["write triggers"].status == WARN
    assert "models_update_versioned" in checks["write triggers"].detail
    runtime.close()


@pytest.fixture(autouse=True)
def _quiet_logging():
    yield
    configure_logging("WARNING", "text")


def test_secrets_in_tracebacks_and_json_fields_are_redacted_too():
    stream = io.StringIO()
    configure_logging("INFO", "json", secrets=["sk-trace-secret-42"], stream=stream)
    try:
        try:
            raise RuntimeError("boom with sk-trace-secret-42 inside")
        except RuntimeError:
            logging.getLogger("sync_core.test").exception("failed", extra={"key": "sk-trace-secret-42"})
    finally:
        configure_logging("WARNING", "text")
    output = stream.getvalue()
    assert "sk-trace-secret-42" not in output
    record = json.loads(output)
    assert "***" in record["exception"] and record["key"] == "***"


def test_pending_changes_gauge_follows_the_health_check(sqlite_url):
    from sync_core import migrate
    from sync_core.api import handle_health

    runtime = build_runtime(Settings.from_env({"DATABASE_URL": sqlite_url}), source=StaticSource())
    migrate.upgrade(runtime.engine)
    handle_health(runtime)
    assert samples(runtime)[("litemaas_sync_pending_changes", ())] == 8
    runtime.service.run(trigger="manual", actor=SYSTEM)
    assert samples(runtime)[("litemaas_sync_pending_changes", ())] == 0
    runtime.close()
