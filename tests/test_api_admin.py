"""The admin API: plan, policies, approvals, restore and the scheduler switch — authenticated
like the sync route, refused by the engine's own checks, audited; handlers and real routes."""

from __future__ import annotations

import json

import pytest
import requests

from sync_core import audit, migrate
from sync_core.api import API_ACTOR
from sync_core.api_admin import (
    handle_approve,
    handle_pause,
    handle_plan,
    handle_policies,
    handle_restore,
    handle_set_policy,
)
from sync_core.config import Settings
from sync_core.control import SCHEDULER_PAUSED, get_control
from sync_core.runtime import build_runtime
from sync_core.snapshots import list_snapshots
from tests.factories import StaticSource, real_entries
from tests.test_app_support import streamlit_server

TOKEN = "tok-admin-api-77"
AUTH = f"Bearer {TOKEN}"


@pytest.fixture
def runtime(db_url):
    source = StaticSource()
    rt = build_runtime(Settings.from_env({"DATABASE_URL": db_url, "SYNC_API_TOKEN": TOKEN}),
                       source=source)
    migrate.upgrade(rt.engine)
    yield rt
    rt.close()


def call(handler, runtime, body=None, **params):
    raw = json.dumps(body).encode() if body is not None else b""
    return handler(runtime, authorization=AUTH, body=raw, **params)


def test_every_admin_route_needs_the_token(runtime):
    for handler in (handle_plan, handle_policies, handle_approve, handle_pause):
        assert handler(runtime, authorization=None, body=b"").status == 401
        assert handler(runtime, authorization="Bearer wrong", body=b"").status == 401
    assert handle_set_policy(runtime, authorization=None, body=b"{}", model_id="x").status == 401
    assert get_control(runtime.engine, SCHEDULER_PAUSED) is None


def test_plan_then_policies_shape_what_a_sync_does(runtime):
    plan = call(handle_plan, runtime)
    assert plan.status == 200 and plan.body["summary"]["insert"] == 8 and plan.body["computedAt"]
    runtime.service.run(trigger="api", actor=API_ACTOR)
    pinned = call(handle_set_policy, runtime, {"pinned": True}, model_id="gpt-4o")
    assert pinned.status == 200 and pinned.body == {"model_id": "gpt-4o", "pinned": True,
                                                     "protected": []}
    protected = call(handle_set_policy, runtime, {"protectedFields": ["context_length"]},
                     model_id="gpt-4o")
    assert protected.body["pinned"] is True and protected.body["protected"] == ["context_length"]
    assert call(handle_set_policy, runtime, {"protectedFields": ["id"]},
                model_id="gpt-4o").status == 400
    assert call(handle_policies, runtime).body == {
        "gpt-4o": {"pinned": True, "protected": ["context_length"]}}
    runtime.source.entries = real_entries()[1:]
    after = call(handle_plan, runtime).body
    assert "gpt-4o" not in {a["model_id"] for a in after["actions"]}  # pinned: not marked
    assert [r["resource_id"] for r in audit.list_audit(runtime.engine,
                                                       action="MODEL_POLICY_CHANGED")] == [
        "gpt-4o", "gpt-4o"]


def test_approve_and_pause(runtime):
    from sync_core.access import SYSTEM

    runtime.service.run(trigger="manual", actor=SYSTEM)
    runtime.source.entries = real_entries()
    runtime.source.entries[0]["model_info"]["input_cost_per_token"] = 1e-3
    answer = call(handle_approve, runtime, {"models": ["gpt-4o"]})
    assert answer.body == {"approved": [{"model_id": "gpt-4o", "field": "input_cost_per_token"}]}
    assert call(handle_approve, runtime, {"models": "gpt-4o"}).status == 400
    assert call(handle_pause, runtime, {"paused": True}).body == {"paused": True}
    assert get_control(runtime.engine, SCHEDULER_PAUSED)["paused"] is True
    assert call(handle_pause, runtime, {"paused": "yes"}).status == 400


def test_restore_shows_then_applies_a_snapshot(runtime):
    from sync_core.access import SYSTEM

    runtime.service.run(trigger="manual", actor=SYSTEM)
    (first,) = list_snapshots(runtime.engine)
    runtime.source.entries = real_entries()[:-1]
    runtime.service.run(trigger="manual", actor=SYSTEM)
    plan = call(handle_restore, runtime, {"syncId": first["sync_audit_id"]})
    assert plan.status == 200 and plan.body["summary"]["restore"] == 1
    stale = call(handle_restore, runtime, {"syncId": first["sync_audit_id"], "apply": True,
                                           "expectFingerprint": "0" * 64})
    assert stale.status == 409 and stale.body["errorKind"] == "stale_plan"
    done = call(handle_restore, runtime, {"syncId": first["sync_audit_id"], "apply": True,
                                          "expectFingerprint": plan.body["fingerprint"]})
    assert done.status == 200 and done.body["restoredModels"] == 1
    assert call(handle_restore, runtime, {"syncId": "nope"}).status == 404
    assert call(handle_restore, runtime, {}).status == 400


def test_the_routes_on_a_real_server(tmp_path):
    url = f"sqlite:///{tmp_path / 'server.sqlite3'}"
    with streamlit_server({"DATABASE_URL": url, "SYNC_API_TOKEN": TOKEN,
                           "_LOG": str(tmp_path / "log")}) as base:
        headers = {"Authorization": AUTH}
        plan = requests.get(base + "/api/v1/models/sync/plan?forceUpdate=true", headers=headers,
                            timeout=60)
        assert plan.status_code == 200 and plan.json()["options"]["forceUpdate"] is True
        put = requests.put(base + "/api/v1/models/gpt-4o/policy", json={"pinned": True},
                           headers=headers, timeout=30)
        assert put.status_code == 200 and put.json()["pinned"] is True
        listed = requests.get(base + "/api/v1/models/policies", headers=headers, timeout=30)
        assert listed.json() == {"gpt-4o": {"pinned": True, "protected": []}}
        assert requests.post(base + "/api/v1/scheduler/pause", json={"paused": True},
                             timeout=30).status_code == 401
        huge = requests.post(base + "/api/v1/scheduler/pause", data=b"x" * 70_000,
                             headers=headers, timeout=30)
        assert huge.status_code == 413
