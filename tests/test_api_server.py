"""The HTTP routes on a real ``streamlit run app.py`` server on loopback, called with requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy.engine import Engine

from sync_core import audit
from sync_core import catalogue_queries as cq
from sync_core.db import create_db_engine
from sync_core.locking import sync_lock
from tests.test_app_support import streamlit_server

TOKEN = "route-test-token"
SYNC = "/api/v1/models/sync"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine]]:
    folder: Path = tmp_path_factory.mktemp("server")
    url = f"sqlite:///{folder / 'server.sqlite3'}"
    with streamlit_server(
        {"DATABASE_URL": url, "SYNC_API_TOKEN": TOKEN, "_LOG": str(folder / "streamlit.log")}
    ) as base:
        engine = create_db_engine(url)
        yield base, engine
        engine.dispose()


def post(base: str, token: str | None = TOKEN, **kwargs: object) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.post(base + SYNC, headers=headers, timeout=60, **kwargs)  # type: ignore[arg-type]


def test_start_up_ran_once_in_the_lifespan(server: tuple[str, Engine]) -> None:
    base, engine = server
    for _ in range(3):
        assert requests.get(base + "/api/v1/models/sync/stats", timeout=30).status_code == 200
    assert requests.get(base + "/", timeout=30).status_code == 200  # the pages are served too
    startups = [r for r in cq.sync_runs(engine) if r["trigger"] == "startup"]
    assert len(startups) == 1 and startups[0]["actor"] == "demo-seed"


def test_sync_refuses_without_or_with_a_wrong_token(server: tuple[str, Engine]) -> None:
    base, engine = server
    before = len(cq.sync_runs(engine))
    for token in (None, "wrong", TOKEN + "x"):
        answer = post(base, token, json={})
        assert answer.status_code == 401
        assert answer.json()["success"] is False
    assert (
        requests.post(base + SYNC, headers={"Authorization": TOKEN}, timeout=30).status_code == 401
    )  # no "Bearer" scheme
    assert len(cq.sync_runs(engine)) == before


def test_bad_body_is_400(server: tuple[str, Engine]) -> None:
    base, _ = server
    assert post(base, data=b"not json").status_code == 400
    assert post(base, json={"forceUpdate": "true"}).status_code == 400


def test_sync_answers_the_result_and_is_audited(server: tuple[str, Engine]) -> None:
    base, engine = server
    answer = post(base, json={"forceUpdate": False, "markUnavailable": True})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["success"] is True
    assert {
        "totalModels",
        "newModels",
        "updatedModels",
        "unavailableModels",
        "errors",
        "syncedAt",
    } <= set(body)
    last = audit.last_sync(engine)
    assert last["id"] == body["auditId"] and last["metadata"]["trigger"] == "api"
    again = post(base, json={}).json()  # nothing changed since: nothing to write
    assert again["newModels"] == again["updatedModels"] == again["unavailableModels"] == 0


def test_409_while_a_sync_runs(server: tuple[str, Engine]) -> None:
    base, engine = server
    with sync_lock(engine, "manual:someone@example.com"):
        answer = post(base, json={})
    assert answer.status_code == 409
    assert answer.json()["holder"] == "manual:someone@example.com"
    assert "already running" in answer.json()["message"]


def test_metrics_are_served_as_prometheus_text(server: tuple[str, Engine]) -> None:
    base, _ = server
    post(base, json={})
    answer = requests.get(base + "/metrics", timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert "# TYPE" in answer.text and TOKEN not in answer.text
    assert 'trigger="api"' in answer.text  # the API sync was observed: the listener is kept


def test_health_and_stats(server: tuple[str, Engine]) -> None:
    base, _ = server
    health = requests.get(base + "/api/v1/models/health", timeout=30)
    assert health.status_code == 200 and health.headers["content-type"] == "application/json"
    body = health.json()
    assert body["status"] in ("healthy", "warning", "error")
    assert body["litellmConnected"] is True and body["modelsCount"] > 0
    assert isinstance(body["issues"], list) and body["lastSync"]
    stats = requests.get(base + "/api/v1/models/sync/stats", timeout=30).json()
    assert stats["totalModels"] == stats["availableModels"] + stats["unavailableModels"]
    assert stats["totalModels"] == body["modelsCount"]
