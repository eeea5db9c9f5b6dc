"""The start-up sequence: migrate, initial sync (logged), demo seeding; a failed sync never stops it."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from sync_core import audit, migrate
from sync_core.config import Settings
from sync_core.db import create_db_engine
from sync_core.errors import LiteLLMConnectionError
from sync_core.locking import sync_lock
from sync_core.runtime import build_runtime
from sync_core.startup import run_startup
from tests.factories import StaticSource


def test_startup_migrates_then_syncs(empty_pg_url, caplog):
    settings = Settings.from_env({"DATABASE_URL": empty_pg_url, "LITELLM_API_URL": "http://x:4000"})
    runtime = build_runtime(settings, source=StaticSource())
    with caplog.at_level(logging.INFO):
        report = run_startup(runtime)
    assert report.revision == migrate.head_revision()
    assert report.sync is not None and report.sync.success and report.sync.new_models == 8
    assert report.sync.trigger == "startup"
    assert any("sync completed" in r.message for r in caplog.records)
    assert report.sync.options.force_update is False and report.sync.options.mark_unavailable
    runtime.close()


def test_failed_initial_sync_does_not_stop_startup(sqlite_url, caplog):
    source = StaticSource()
    source.error = LiteLLMConnectionError("Could not reach LiteLLM at http://x:4000/model/info")
    settings = Settings.from_env({"DATABASE_URL": sqlite_url, "LITELLM_API_URL": "http://x:4000"})
    runtime = build_runtime(settings, source=source)
    with caplog.at_level(logging.WARNING):
        report = run_startup(runtime)
    assert report.sync is not None and not report.sync.success
    assert "Could not reach LiteLLM" in report.sync_error
    assert any("start-up sync failed" in r.message for r in caplog.records)
    assert audit.last_sync(runtime.engine)["success"] in (False, 0)
    runtime.close()


def test_startup_goes_on_while_another_replica_syncs(sqlite_url):
    settings = Settings.from_env({"DATABASE_URL": sqlite_url, "LITELLM_API_URL": "http://x:4000"})
    runtime = build_runtime(settings, source=StaticSource())
    with sync_lock(runtime.engine, "schedule:replica-2"):
        report = run_startup(runtime)
    assert report.sync is None and "already running" in report.sync_error
    runtime.close()


def test_broken_database_stops_startup():
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",
            "LITELLM_API_URL": "http://x:4000",
            "DB_CONNECTION_TIMEOUT": "1000",
        }
    )
    runtime = build_runtime(settings, source=StaticSource())
    with pytest.raises(sa.exc.OperationalError):
        run_startup(runtime)


def test_demo_mode_seeds_an_older_snapshot_so_the_diff_has_changes(tmp_path):
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}"})
    assert settings.is_demo
    runtime = build_runtime(settings)
    report = run_startup(runtime)
    assert report.demo_seeded and report.sync.success
    plan = runtime.service.preview()
    assert plan.summary["insert"] == 2 and plan.summary["mark_unavailable"] == 1
    assert plan.summary["update"] == 4
    second = run_startup(runtime)  # a restart syncs normally
    assert not second.demo_seeded and second.sync.success
    assert not runtime.service.preview().has_changes
    runtime.close()
    with create_db_engine(settings).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM models")).scalar() == 18


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": "postgresql://postgres:pw-secret-9@127.0.0.1:1/x"}, "Database not usable at"),
        ({"LITELLM_SYNC_INTERVAL": "soon"}, "Configuration error: LITELLM_SYNC_INTERVAL"),
    ],
)
def test_server_refuses_to_start_with_one_clear_line(env, expected):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LITELLM_API_URL")}
    done = subprocess.run(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", "0", "--browser.gatherUsageStats", "false"],
        cwd=root, env={**clean, **env}, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert expected in output
    assert "pw-secret-9" not in output
