"""The HTTP API's logic without a server: tokens, bodies, status codes, roles."""

from __future__ import annotations

import orjson
import pytest

from sync_core import api, audit
from sync_core.access import ADMIN, VIEWER
from sync_core.config import Settings
from sync_core.locking import sync_lock
from sync_core.runtime import Runtime
from tests.test_app_support import free_port


@pytest.fixture
def runtime(sqlite_url: str):  # type: ignore[no-untyped-def]
    settings = Settings.from_env({"DATABASE_URL": sqlite_url, "SYNC_API_TOKEN": "s3cret"})
    rt = api.build_app_runtime(settings)
    yield rt
    rt.close()


def sync(
    rt: Runtime, authorization: str | None = "Bearer s3cret", body: bytes = b""
) -> api.ApiResponse:
    return api.handle_sync(
        rt, authorization=authorization, body=body, ip_address="127.0.0.1", user_agent="pytest"
    )


def test_sync_needs_the_right_bearer_token(runtime: Runtime) -> None:
    assert sync(runtime, None).status == 401
    assert sync(runtime, "Bearer wrong").status == 401
    assert sync(runtime, "Basic s3cret").status == 401
    assert sync(runtime, "Bearer s3cret2").status == 401
    assert audit.last_sync(runtime.engine) is None  # nothing ran


def test_sync_route_is_closed_without_a_configured_token(sqlite_url: str) -> None:
    rt = api.build_app_runtime(Settings.from_env({"DATABASE_URL": sqlite_url}))
    answer = sync(rt, "Bearer ")
    assert answer.status == 401 and answer.body["error"] == "sync_api_disabled"
    assert "SYNC_API_TOKEN" in answer.body["message"]
    rt.close()


@pytest.mark.parametrize(
    "body", [b"{", b"[]", b'{"forceUpdate": "yes"}', b'{"markunavailable": false}']
)
def test_bad_bodies_are_400(runtime: Runtime, body: bytes) -> None:
    answer = sync(runtime, body=body)
    assert answer.status == 400 and answer.body["error"] == "bad_request"


def test_a_sync_answers_with_litemaas_keys_and_is_audited_as_api(runtime: Runtime) -> None:
    answer = sync(runtime, body=b'{"forceUpdate": true, "markUnavailable": false}')
    assert answer.status == 200
    for key in (
        "success",
        "totalModels",
        "newModels",
        "updatedModels",
        "unavailableModels",
        "errors",
        "syncedAt",
    ):
        assert key in answer.body
    assert answer.body["success"] and answer.body["newModels"] > 0
    last = audit.last_sync(runtime.engine)
    assert last["metadata"]["trigger"] == "api" and last["ip_address"] == "127.0.0.1"
    assert last["metadata"]["options"]["forceUpdate"] is True
    orjson.loads(api.dumps(answer.body))  # serialisable as the route sends it


def test_409_while_another_sync_holds_the_lock(runtime: Runtime) -> None:
    with sync_lock(runtime.engine, "manual:alice"):
        answer = sync(runtime)
    assert answer.status == 409 and answer.body["error"] == "sync_in_progress"
    assert answer.body["holder"] == "manual:alice"


def test_502_when_litellm_cannot_be_reached(sqlite_url: str) -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": sqlite_url,
            "SYNC_API_TOKEN": "t",
            "LITELLM_API_URL": f"http://127.0.0.1:{free_port()}",
        }
    )
    rt = api.build_app_runtime(settings)
    rt.source._sleep = lambda _s: None  # no real back-off waits in tests
    answer = api.handle_sync(rt, authorization="Bearer t", body=b"")
    assert answer.status == 502 and answer.body["success"] is False
    assert answer.body["errorKind"] == "connection"
    rt.close()


def test_health_and_stats_shapes(runtime: Runtime) -> None:
    sync(runtime)
    health = api.handle_health(runtime)
    assert health.status == 200
    assert health.body["status"] in ("healthy", "warning", "error")
    assert {"lastSync", "modelsCount", "litellmConnected", "issues"} <= set(health.body)
    stats = api.handle_stats(runtime).body
    assert set(stats) == {"totalModels", "availableModels", "unavailableModels", "lastSyncAt"}
    assert stats["totalModels"] == health.body["modelsCount"] > 0
    assert stats["lastSyncAt"].endswith("+00:00")


def test_roles_from_login_and_mode() -> None:
    dev, prod = Settings(), Settings(node_env="production", litellm_url="http://x")
    assert api.resolve_identity(dev, auth_configured=False).actor.role == ADMIN
    viewer = api.resolve_identity(prod, auth_configured=False)
    assert viewer.actor.role == VIEWER and "production" in viewer.reason
    env = {"ADMIN_EMAILS": "Boss@Example.com", "ADMIN_GROUPS": "platform-admins"}
    user = {"is_logged_in": True, "email": "boss@example.com"}
    assert (
        api.resolve_identity(prod, auth_configured=True, user=user, environ=env).actor.role == ADMIN
    )
    grouped = {"is_logged_in": True, "email": "x@example.com", "groups": ["platform-admins"]}
    assert (
        api.resolve_identity(prod, auth_configured=True, user=grouped, environ=env).actor.role
        == ADMIN
    )
    other = {"is_logged_in": True, "email": "someone@example.com"}
    assert (
        api.resolve_identity(dev, auth_configured=True, user=other, environ=env).actor.role
        == VIEWER
    )
    assert (
        api.resolve_identity(dev, auth_configured=True, user={}, environ=env).actor.role == VIEWER
    )


def test_the_process_runtime_is_built_once_per_configuration(sqlite_url: str) -> None:
    api.reset_runtimes()
    settings = Settings.from_env({"DATABASE_URL": sqlite_url})
    first = api.get_app_runtime(settings)
    assert api.get_app_runtime(Settings.from_env({"DATABASE_URL": sqlite_url})) is first
    assert first.startup is not None and first.startup.demo_seeded
    api.reset_runtimes()


def test_the_scheduler_runs_in_the_server_process_only_when_enabled(sqlite_url: str) -> None:
    api.reset_runtimes()
    off = api.get_app_runtime(Settings.from_env({"DATABASE_URL": sqlite_url}))
    assert api.start_scheduler(off) is None
    api.reset_runtimes()
    on = api.get_app_runtime(
        Settings.from_env(
            {"DATABASE_URL": sqlite_url, "LITELLM_AUTO_SYNC": "true", "LITELLM_SYNC_INTERVAL": "1h"}
        )
    )
    scheduler = api.start_scheduler(on)
    assert scheduler is not None and scheduler.interval_s == 3600
    assert api.start_scheduler(on) is scheduler  # once per process
    thread = scheduler._thread
    assert thread is not None and thread.is_alive()
    api.reset_runtimes()
    assert not thread.is_alive()


def test_the_api_confirms_marking_most_models_unavailable_with_the_number(tmp_path):
    from sync_core import api as api_module
    from sync_core.config import Settings
    from sync_core.runtime import build_runtime
    from tests.factories import StaticSource, real_entries

    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
                                  "SYNC_API_TOKEN": "tok-confirm"})
    source = StaticSource()
    runtime = build_runtime(settings, source=source)
    from sync_core import migrate

    migrate.upgrade(runtime.engine)
    auth = "Bearer tok-confirm"
    assert api_module.handle_sync(runtime, authorization=auth, body=b"{}").status == 200
    source.entries = real_entries()[:2]
    refused = api_module.handle_sync(runtime, authorization=auth, body=b"{}")
    assert refused.status == 409 and "giving the number 6" in refused.body["errorMessage"]
    bad = api_module.handle_sync(runtime, authorization=auth, body=b'{"confirmUnavailable": "6"}')
    assert bad.status == 400
    done = api_module.handle_sync(runtime, authorization=auth, body=b'{"confirmUnavailable": 6}')
    assert done.status == 200 and done.body["unavailableModels"] == 6
    runtime.close()
