"""Access: a viewer cannot sync through the engine; the HTTP API rejects missing and wrong
tokens, compares in constant time, never opens without a configured token and allows no
cross-site use, answers 429 after repeated failures and refuses oversized bodies.
"""

from __future__ import annotations

import asyncio
import hmac

import pytest

from sync_core import api
from sync_core.access import Actor
from sync_core.config import Secret, Settings
from sync_core.errors import PermissionDeniedError
from sync_core.runtime import build_runtime
from sync_core.sync import SyncService
from tests.factories import StaticSource
from tests.reliability.helpers import audit_rows, fingerprint, make_engine

TOKEN = "tok-access-9a8b7c6d5e"


@pytest.mark.parametrize("role", ["viewer", "Admin", "ADMIN", "", "admin "])
def test_only_the_exact_admin_role_may_sync(db_url, role):
    engine = make_engine(db_url)
    source = StaticSource()
    before = fingerprint(engine)
    with pytest.raises(PermissionDeniedError) as caught:
        SyncService(engine, source).run(trigger="manual", actor=Actor("eve@example.com", role))
    assert "only admins may sync" in str(caught.value)
    assert source.fetches == 0  # refused before anything happened
    assert fingerprint(engine) == before and audit_rows(engine) == []
    engine.dispose()


@pytest.fixture
def runtime(sqlite_url):
    settings = Settings(database_url=sqlite_url, sync_api_token=Secret(TOKEN))
    rt = build_runtime(settings, source=StaticSource())
    yield rt
    rt.close()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        TOKEN,
        f"Basic {TOKEN}",
        f"Token {TOKEN}",
        f"Bearer {TOKEN.upper()}",
        "Bearer \x00",
        "Bearer " + "a" * 100_000,
        "Bearer ünïcødé",
    ],
    ids=lambda a: repr(a)[:30],
)
def test_missing_or_wrong_token_is_401_and_syncs_nothing(runtime, authorization):
    answer = api.handle_sync(runtime, authorization=authorization, body=b"{}")
    assert answer.status == 401 and answer.body["success"] is False
    assert TOKEN not in str(answer.body)
    assert runtime.service.source.fetches == 0 and audit_rows(runtime.engine) == []


def test_right_token_syncs(runtime):
    answer = api.handle_sync(runtime, authorization=f"Bearer {TOKEN}", body=b"{}")
    assert answer.status == 200 and answer.body["success"] is True
    assert audit_rows(runtime.engine)[-1]["metadata"]["trigger"] == "api"


def test_no_configured_token_means_closed(sqlite_url):
    for token in (None, Secret("")):
        rt = build_runtime(
            Settings(database_url=sqlite_url, sync_api_token=token), source=StaticSource()
        )
        for auth in (None, "Bearer ", "Bearer None", "Bearer null"):
            answer = api.handle_sync(rt, authorization=auth, body=b"{}")
            assert answer.status == 401 and answer.body["error"] == "sync_api_disabled"
        rt.close()


def test_token_is_compared_in_constant_time(runtime, monkeypatch):
    calls = []
    original = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(api.hmac, "compare_digest", spy)
    api.handle_sync(runtime, authorization=f"Bearer {TOKEN}x", body=b"{}")
    api.handle_sync(runtime, authorization=f"Bearer {TOKEN}", body=b"{}")
    assert len(calls) == 2 and all(isinstance(a, bytes) for pair in calls for a in pair)


def test_bad_bodies_are_400_and_sync_nothing(runtime):
    for body in (
        b"[]",
        b"not json",
        b'{"forceUpdate": "yes"}',
        b'{"dropTables": true}',
        b'{"forceUpdate": 1}',
        b'{"markUnavailable": null}',
    ):
        answer = api.handle_sync(runtime, authorization=f"Bearer {TOKEN}", body=body)
        assert answer.status == 400, body
    assert runtime.service.source.fetches == 0


def test_repeated_failures_are_throttled(runtime):
    statuses = [
        api.handle_sync(
            runtime, authorization=f"Bearer guess-{i}", body=b"{}", ip_address="203.0.113.9"
        ).status
        for i in range(30)
    ]
    assert 429 in statuses


def test_oversized_body_is_refused(runtime):
    body = b'{"forceUpdate": true, "pad": "' + b"x" * (8 * 1024 * 1024) + b'"}'
    answer = api.handle_sync(runtime, authorization=f"Bearer {TOKEN}", body=body)
    assert answer.status == 413


# --- the real routes, driven as ASGI (no server, no browser) -----------------------------------


def _asgi(app, method, path, headers=(), body=b"", query=b""):
    """One request through the ASGI app; returns (status, headers dict, body)."""
    sent: dict = {"body": b""}

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
            sent["headers"] = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            sent["body"] += message.get("body", b"")

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": ("198.51.100.7", 5555),
        "server": ("testserver", 80),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }
    asyncio.run(app(scope, receive, send))
    return sent["status"], sent["headers"], sent["body"]


@pytest.fixture
def routes_app(sqlite_url, monkeypatch):
    import streamlit  # noqa: F401
    from starlette.applications import Starlette

    import app as dashboard

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("SYNC_API_TOKEN", TOKEN)
    api.reset_runtimes()
    routes, _lifespan = dashboard._server_parts()
    yield Starlette(routes=routes)
    api.reset_runtimes()


def test_no_cross_site_use(routes_app, sqlite_url):
    evil = ("Origin", "https://evil.example")
    # a cross-site form post (a "simple" request: no custom header, maybe cookies) is refused
    status, headers, _ = _asgi(
        routes_app,
        "POST",
        "/api/v1/models/sync",
        [
            evil,
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", f"token={TOKEN}; _streamlit_xsrf=abc"),
        ],
        b"forceUpdate=true",
    )
    assert status == 401
    assert "access-control-allow-origin" not in headers
    # the token is not accepted from the query string either
    status, _, _ = _asgi(
        routes_app,
        "POST",
        "/api/v1/models/sync",
        [evil],
        query=f"token={TOKEN}&access_token={TOKEN}".encode(),
    )
    assert status == 401
    # a preflight for the Authorization header gets no CORS grant, so browsers never send it
    status, headers, _ = _asgi(
        routes_app,
        "OPTIONS",
        "/api/v1/models/sync",
        [
            evil,
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "authorization"),
        ],
    )
    assert status >= 400 or "access-control-allow-origin" not in headers
    assert "access-control-allow-origin" not in headers
    engine = make_engine(sqlite_url)
    assert [a["metadata"]["trigger"] for a in audit_rows(engine)] == ["startup"]  # no api sync
    # the legitimate, non-browser caller works and still gets no CORS grant
    status, headers, _ = _asgi(
        routes_app,
        "POST",
        "/api/v1/models/sync",
        [evil, ("Authorization", f"Bearer {TOKEN}")],
        b"{}",
    )
    assert status == 200 and "access-control-allow-origin" not in headers
    assert audit_rows(engine)[-1]["metadata"]["trigger"] == "api"
    engine.dispose()
