"""Every CLI command and exit code, in-process (mock catalogue) and through the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sync_core.cli import main
from sync_core.db import create_db_engine
from sync_core.locking import sync_lock


@pytest.fixture
def env(monkeypatch, db_url):
    monkeypatch.setenv("DATABASE_URL", db_url)
    return db_url


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_diff_sync_diff_cycle(env, capsys):
    code, out, _ = run(capsys, "diff", "--json")
    assert code == 2
    plan = json.loads(out)
    assert plan["summary"]["insert"] == 17 and plan["summary"]["skip"] == 2
    assert {a["action"] for a in plan["actions"]} == {"insert", "skip"}

    code, out, _ = run(capsys, "sync", "--json")
    assert code == 0
    result = json.loads(out)
    assert {
        "success",
        "totalModels",
        "newModels",
        "updatedModels",
        "unavailableModels",
        "errors",
        "syncedAt",
    } <= set(result)
    assert result["success"] is True and result["newModels"] == 17

    code, out, _ = run(capsys, "diff")
    assert code == 0 and "insert=0, update=0, mark_unavailable=0, restore=0, unchanged=17" in out
    code, out, _ = run(capsys, "sync", "--force-update")
    assert code == 0 and "updatedModels" in out and "17" in out


def test_human_diff_is_a_table(env, capsys):
    code, out, _ = run(capsys, "diff")
    assert code == 2
    assert out.splitlines()[0].split() == ["model", "action", "changes"]
    assert "Summary: insert=17" in out


def test_commands_refuse_an_unmigrated_database(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    code, _, err = run(capsys, "sync")
    assert code == 1 and "litemaas-sync migrate" in err
    code, out, _ = run(capsys, "migrate")
    assert code == 0 and "revision" in out
    code, _, _ = run(capsys, "diff")
    assert code == 2


def test_stale_fingerprint_is_refused(env, capsys):
    code, out, _ = run(capsys, "sync", "--json", "--expect-fingerprint", "0" * 64)
    assert code == 1
    assert json.loads(out)["errorKind"] == "stale_plan"
    code, out, _ = run(capsys, "diff", "--json")
    fingerprint = json.loads(out)["fingerprint"]
    code, out, _ = run(capsys, "sync", "--json", "--expect-fingerprint", fingerprint)
    assert code == 0


def test_sync_refused_while_another_runs(env, capsys):
    engine = create_db_engine(env)
    with sync_lock(engine, "schedule:worker-2"):
        code, _, err = run(capsys, "sync")
    engine.dispose()
    assert code == 1
    assert "already running" in err and "worker-2" in err
    engine = create_db_engine(env)
    with sync_lock(engine, "schedule:worker-2"):
        code, out, _ = run(capsys, "sync", "--json")
    engine.dispose()
    refused = json.loads(out)  # scripts parsing stdout get JSON even when refused
    assert code == 1 and refused["success"] is False
    assert refused["errorKind"] == "sync_in_progress" and refused["newModels"] == 0


def test_unreachable_litellm_fails_cleanly(env, monkeypatch, capsys):
    monkeypatch.setenv("LITELLM_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LITELLM_API_KEY", "sk-cli-secret-7731")
    monkeypatch.setattr("sync_core.litellm.time.sleep", lambda s: None)
    code, out, err = run(capsys, "sync", "--json")
    assert code == 1
    result = json.loads(out)
    assert result["success"] is False and result["errorKind"] == "connection"
    assert "127.0.0.1:9" in result["errorMessage"]
    code, out, err = run(capsys, "diff")
    assert code == 1 and "connection" in err
    code, out, err = run(capsys, "health", "--json")
    assert code == 1
    assert json.loads(out)["litellmConnected"] is False
    assert "sk-cli-secret-7731" not in out + err


def test_health_reports_counts_and_last_sync(env, capsys):
    run(capsys, "sync")
    code, out, _ = run(capsys, "health", "--json")
    health = json.loads(out)
    assert code == 0
    assert health["status"] in ("healthy", "warning")
    assert health["modelsCount"] == 17 and health["litellmConnected"] is True
    assert health["lastSync"] is not None
    code, out, _ = run(capsys, "health")
    assert code == 0 and "models (db)" in out


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("LITELLM_SYNC_INTERVAL", "soon", "LITELLM_SYNC_INTERVAL"),
        ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
        ("LITELLM_CONFLICT_RESOLUTION", "coin_flip", "litellm_wins"),
    ],
)
def test_bad_configuration_names_the_variable(monkeypatch, capsys, variable, value, expected):
    monkeypatch.setenv(variable, value)
    code, _, err = run(capsys, "diff")
    assert code == 1 and expected in err


def test_unreachable_database_is_one_clear_line(monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres:pw-hidden@127.0.0.1:1/nothing")
    code, _, err = run(capsys, "migrate")
    assert code == 1
    assert "Database error" in err and "pw-hidden" not in err
    assert "Traceback" not in err


def test_console_script_and_module_entry_point(env):
    script = str(Path(sys.executable).parent / "litemaas-sync")
    for command in ([script], [sys.executable, "-m", "sync_core"]):
        done = subprocess.run(
            [*command, "diff", "--json"],
            capture_output=True,
            text=True,
            env={**os.environ, "DATABASE_URL": env},
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert json.loads(done.stdout)["summary"]["insert"] == 17


def test_the_one_shot_process_keeps_its_exit_codes_and_reports_unwritable_output(env):
    """``litemaas-sync`` exits through ``launch.run`` (no interpreter teardown): a bad argument
    still exits 2 with the usage, a configuration error 1, and output that cannot be written
    (a full disk) exits 120 with a message, as Python's own exit does, never 2 as if complete."""
    script = str(Path(sys.executable).parent / "litemaas-sync")
    environ = {**os.environ, "DATABASE_URL": env}
    bad = subprocess.run([script, "sync", "--no-such-flag"], capture_output=True, text=True,
                         env=environ, timeout=120)
    assert bad.returncode == 2 and "usage:" in bad.stderr
    broken = subprocess.run([script, "diff"], capture_output=True, text=True, timeout=120,
                            env={**environ, "DATABASE_URL": "mysql://nope"})
    assert broken.returncode == 1 and "DATABASE_URL" in broken.stderr
    buffered = {k: v for k, v in environ.items() if k != "PYTHONUNBUFFERED"}
    with open("/dev/full", "w") as full:  # the short table: written only by the final flush
        done = subprocess.run([script, "diff"], stdout=full, stderr=subprocess.PIPE,
                              text=True, env=buffered, timeout=120)
        assert done.returncode == 120 and "could not write the output" in done.stderr
        long = subprocess.run([script, "diff", "--json"], stdout=full, stderr=subprocess.PIPE,
                              text=True, env=environ, timeout=120)  # (fails while writing)
        assert long.returncode == 1 and "No space left on device" in long.stderr


def test_cli_syncs_record_per_model_history(env, capsys):
    from sync_core import audit, history

    run(capsys, "sync")
    engine = create_db_engine(env)
    (row,) = audit.list_audit(engine, action=history.CHANGES_ACTION)
    assert row["metadata"]["trigger"] == "cli" and row["metadata"]["changeCount"] == 17
    assert history.model_history(engine, "gpt-4o")[0]["action"] == "insert"
    engine.dispose()


def test_history_lists_the_first_changes_and_counts_them_all(env, capsys, monkeypatch):
    """A sync writing more models than a history row lists: all are counted, the first
    ``MAX_RECORDED_CHANGES`` described, and the row says it was truncated."""
    from sync_core import audit, history

    monkeypatch.setattr(history, "MAX_RECORDED_CHANGES", 5)
    run(capsys, "sync")
    engine = create_db_engine(env)
    (row,) = audit.list_audit(engine, action=history.CHANGES_ACTION)
    meta = row["metadata"]
    assert meta["changeCount"] == 17 and meta["truncated"] is True
    assert len(meta["changes"]) == 5 and all(c["action"] == "insert" for c in meta["changes"])
    engine.dispose()


def test_history_of_exactly_the_recorded_number_of_changes_is_not_truncated(env, capsys,
                                                                             monkeypatch):
    from sync_core import audit, history

    monkeypatch.setattr(history, "MAX_RECORDED_CHANGES", 17)
    run(capsys, "sync")
    engine = create_db_engine(env)
    (row,) = audit.list_audit(engine, action=history.CHANGES_ACTION)
    meta = row["metadata"]
    assert (meta["changeCount"], meta["truncated"], len(meta["changes"])) == (17, False, 17)
    engine.dispose()
