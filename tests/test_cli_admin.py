"""Admin commands through the CLI, against a LiteLLM whose catalogue changes between syncs:
policies, approvals, selective sync, the mass-unavailable confirmation, plan expiry, restore."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from sync_core.cli import main
from sync_core.db import create_db_engine
from tests.factories import real_entries
from tests.fake_litellm import FakeLiteLLM

KEY = "sk-cli-admin-key"


@pytest.fixture
def litellm():
    with FakeLiteLLM(real_entries(), key=KEY) as fake:
        yield fake


@pytest.fixture
def cli(monkeypatch, db_url, litellm, capsys):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("LITELLM_API_URL", litellm.url)
    monkeypatch.setenv("LITELLM_API_KEY", KEY)

    def run(*argv):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def rows(db_url):
    engine = create_db_engine(db_url)
    with engine.connect() as conn:
        found = {r.id: r for r in conn.execute(sa.text(
            "SELECT id, availability, context_length FROM models"))}
    engine.dispose()
    return found


def test_pin_and_protect_through_the_cli(cli, litellm, db_url):
    assert cli("sync")[0] == 0
    assert cli("policy", "pin", "gpt-4o")[0] == 0
    assert cli("policy", "protect", "claude-sonnet", "context_length")[0] == 0
    code, out, _ = cli("policy", "list", "--json")
    assert json.loads(out) == {
        "claude-sonnet": {"pinned": False, "protected": ["context_length"]},
        "gpt-4o": {"pinned": True, "protected": []}}
    litellm.entries = [e for e in real_entries() if e["model_name"] != "gpt-4o"]
    litellm.entries[0]["model_info"]["max_input_tokens"] = 1000  # claude-sonnet
    code, out, _ = cli("diff", "--json")
    actions = {a["model_id"]: a for a in json.loads(out)["actions"]}
    assert "gpt-4o" not in actions  # pinned: left unchanged
    assert actions["claude-sonnet"]["held"] == {"context_length": "protected by an admin"}
    assert cli("sync")[0] == 0
    stored = rows(db_url)
    assert stored["gpt-4o"].availability == "available" and stored["claude-sonnet"].context_length == 200000
    assert cli("policy", "unpin", "gpt-4o")[0] == 0
    assert cli("policy", "unprotect", "claude-sonnet")[0] == 0
    assert json.loads(cli("policy", "list", "--json")[1]) == {}
    with pytest.raises(SystemExit):  # argparse: not a protectable field
        cli("policy", "protect", "gpt-4o", "id")


def test_only_confirm_and_expiry(cli, litellm, db_url):
    assert cli("sync", "--only", "gpt-4o", "--only", "claude-sonnet")[0] == 0
    assert set(rows(db_url)) == {"gpt-4o", "claude-sonnet"}
    assert cli("sync")[0] == 0
    litellm.entries = real_entries()[:2]
    code, out, _ = cli("sync", "--json")
    assert code == 1 and "giving the number 6" in json.loads(out)["errorMessage"]
    code, out, _ = cli("diff", "--json")
    plan = json.loads(out)
    old = (datetime.now(UTC) - timedelta(minutes=20)).isoformat()
    code, _, err = cli("sync", "--expect-fingerprint", plan["fingerprint"], "--reviewed-at", old,
                       "--confirm-unavailable", "6")
    assert code == 1 and "review the diff again" in err
    code, out, _ = cli("sync", "--json", "--expect-fingerprint", plan["fingerprint"],
                       "--reviewed-at", plan["computedAt"], "--confirm-unavailable", "6")
    assert code == 0 and json.loads(out)["unavailableModels"] == 6


def test_approve_lists_and_stores_the_suspicious_changes(cli, litellm, db_url):
    assert cli("sync")[0] == 0
    litellm.entries = real_entries()
    litellm.entries[0]["model_info"]["input_cost_per_token"] = 1e-3  # 400×
    code, out, _ = cli("approve", "--json")
    assert json.loads(out) == {"approved": [{"model_id": "gpt-4o", "field": "input_cost_per_token"}]}
    from sync_core.control import approvals

    engine = create_db_engine(db_url)
    assert any(k.startswith("gpt-4o\x1finput_cost_per_token") for k in approvals(engine))
    engine.dispose()


def test_restore_an_earlier_catalogue_as_a_reviewed_plan(cli, litellm, db_url):
    assert cli("sync", "--json")[0] == 0
    code, out, _ = cli("restore", "--list", "--json")
    (first,) = json.loads(out)
    litellm.entries = real_entries()[:-1]
    litellm.entries[0]["model_info"]["max_input_tokens"] = 64000
    assert cli("sync")[0] == 0
    assert len(json.loads(cli("restore", "--list", "--json")[1])) == 2
    code, out, _ = cli("restore", first["sync_audit_id"], "--json")
    assert code == 2
    plan = {a["model_id"]: a for a in json.loads(out)["actions"]}
    assert plan["text-embedding-3-small"]["action"] == "restore"
    assert plan["gpt-4o"]["changes"]["context_length"] == {"old": 64000, "new": 128000}
    code, out, _ = cli("restore", first["sync_audit_id"], "--apply", "--json")
    assert code == 0 and json.loads(out)["restoredModels"] == 1
    stored = rows(db_url)
    assert stored["gpt-4o"].context_length == 128000
    assert stored["text-embedding-3-small"].availability == "available"
    # and forward again, to the second sync's snapshot (on PostgreSQL a delta of the first)
    second = next(s for s in json.loads(cli("restore", "--list", "--json")[1])
                  if s["sync_audit_id"] not in (first["sync_audit_id"],)
                  and s["model_count"] == first["model_count"] - 1)
    if db_url.startswith("postgresql"):
        engine = create_db_engine(db_url)
        with engine.connect() as conn:
            assert conn.execute(sa.text(
                "SELECT base_sync_audit_id FROM model_sync_snapshots WHERE sync_audit_id = :i"),
                {"i": second["sync_audit_id"]}).scalar() == first["sync_audit_id"]
        engine.dispose()
    code, out, _ = cli("restore", second["sync_audit_id"], "--apply", "--json")
    assert code == 0 and json.loads(out)["unavailableModels"] == 1
    stored = rows(db_url)
    assert stored["gpt-4o"].context_length == 64000
    assert stored["text-embedding-3-small"].availability == "unavailable"
    code, _, err = cli("restore", "0" * 36)
    assert code == 1 and "No snapshot" in err
