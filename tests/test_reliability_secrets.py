"""Secrets: credentials LiteLLM sends in its params never reach the database, and the
configured LITELLM_API_KEY / SYNC_API_TOKEN (and the database password) appear nowhere a run
leaves a trace: log lines at DEBUG (ours, urllib3's, SQLAlchemy's with bound parameters), CLI
output, audit rows, error messages, health and API JSON, a pg_dump / SQLite dump of the database.

Every secret carries the marker ``LEAKCHECK``, so one search finds any of them.
"""

from __future__ import annotations

import json
import logging
import subprocess

from sync_core import api
from sync_core.access import Actor
from sync_core.config import Secret, Settings
from sync_core.health import check_health
from sync_core.litellm import LiteLLMClient
from sync_core.runtime import build_runtime
from sync_core.sync import SyncService
from tests import fake_litellm as fl
from tests.factories import entry, real_entries
from tests.reliability.helpers import audit_rows, cli_env, make_engine, run_cli

MARK = "LEAKCHECK"
KEY = f"sk-{MARK}-7f3a9c1e5b"
TOKEN = f"tok-{MARK}-2d8e4b6f"
DB_PASSWORD = f"pw-{MARK}-db"
ADMIN = Actor("secrets@example.com", "admin")


def leaky_entries() -> list[dict]:
    """The real catalogue plus deployments whose params carry every kind of credential."""
    return real_entries() + [
        entry(
            "azure-gpt",
            "azure/gpt-4o",
            params={
                "api_key": KEY,
                "api_base": f"https://user:{MARK}-basic@example.openai.azure.com/v1",
                "azure_ad_token": f"{MARK}-azure-ad",
                "client_secret": f"{MARK}-client-secret",
                "extra_headers": {"Authorization": f"Bearer {MARK}-hdr", "X-Api-Key": f"{MARK}-x"},
                "litellm_credential_name": f"{MARK}-credential-name",
            },
        ),
        entry(
            "bedrock-claude-leaky",
            "bedrock/claude",
            params={
                "aws_access_key_id": f"AKIA{MARK}",
                "aws_secret_access_key": f"{MARK}-aws-secret",
                "aws_session_token": f"{MARK}-aws-session",
                "vertex_credentials": json.dumps({"private_key": f"{MARK}-pem"}),
                "fallbacks": [{"api_key": f"{MARK}-in-a-list", "model": "x"}],
            },
        ),
        entry(
            "vertex-gemini",
            "vertex_ai/gemini",
            master_key=f"{MARK}-master",
            params={"password": f"{MARK}-pw", "vertex_project": "proj-1"},
        ),
        entry(
            "gemini-query-key",
            "gemini/gemini-pro",
            params={"api_base": f"https://generativelanguage.example/v1?key={MARK}-query&alt=sse"},
        ),
    ]


def _dump(url: str) -> str:
    if url.startswith("postgresql"):
        done = subprocess.run(
            ["pg_dump", "--data-only", url.replace("+psycopg", "")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout
    import sqlite3

    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return "\n".join(conn.iterdump())


def _with_password(url: str) -> str:
    if url.startswith("postgresql"):  # the test server trusts everyone: any password works
        return url.replace("postgres@", f"postgres:{DB_PASSWORD}@")
    return url


def test_no_secret_anywhere_a_run_leaves_a_trace(db_url, caplog):
    traces: dict[str, str] = {}
    caplog.set_level(logging.DEBUG)
    for name in ("sqlalchemy.engine", "urllib3", "sync_core"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        with fl.FakeLiteLLM(leaky_entries(), key=KEY) as fake:
            engine = make_engine(db_url)
            client = LiteLLMClient(fake.url, Secret(KEY), timeout=5, sleep=lambda s: None)
            service = SyncService(engine, client)
            result = service.run(trigger="manual", actor=ADMIN)
            assert result.success and result.new_models == 12, (
                result.errors,
                [a.reason for a in result.plan.actions if a.action == "skip"],
            )
            traces["result"] = json.dumps(result.to_dict(), default=str)
            traces["plan"] = repr(result.plan)
            traces["health"] = json.dumps(check_health(service).to_api(), default=str)

            # the API: right and wrong tokens, health, stats
            settings = Settings(
                litellm_url=fake.url,
                litellm_api_key=Secret(KEY),
                database_url=db_url,
                sync_api_token=Secret(TOKEN),
            )
            runtime = build_runtime(settings, source=client, engine=engine)
            for auth in (f"Bearer {TOKEN}", f"Bearer {TOKEN}x", TOKEN, None):
                answer = api.handle_sync(runtime, authorization=auth, body=b'{"forceUpdate": true}')
                traces[f"api sync {auth is not None}"] = json.dumps(answer.body, default=str)
            traces["api health"] = json.dumps(api.handle_health(runtime).body, default=str)
            traces["api stats"] = json.dumps(api.handle_stats(runtime).body, default=str)
            traces["settings repr"] = repr(settings) + str(settings.litellm_api_key)

            # failures whose messages could echo what they were sent
            for behaviour in (
                fl.status(401, f"Malformed API Key passed in: Bearer {KEY}"),
                fl.status(500, f"upstream said {KEY}"),
                fl.malformed_json,
            ):
                fake.default = behaviour
                failed = service.run(trigger="manual", actor=ADMIN)
                assert not failed.success
                traces[f"failure {failed.error_kind}"] = failed.error_message
            fake.default = None

            # the CLI, every command, at DEBUG, with the password in DATABASE_URL
            env = cli_env(
                _with_password(db_url), fake.url, KEY, SYNC_API_TOKEN=TOKEN, LOG_LEVEL="debug"
            )
            for args in (
                ["sync", "--json"],
                ["sync", "--force-update"],
                ["diff", "--json"],
                ["diff"],
                ["health", "--json"],
                ["health"],
            ):
                done = run_cli(args, env, fast=False)
                assert done.returncode in (0, 2), done.stderr
                traces[f"cli {' '.join(args)}"] = done.stdout + done.stderr
            fake.default = fl.status(401, f"Malformed API Key passed in: Bearer {KEY}")
            done = run_cli(["sync"], env, fast=False)
            assert done.returncode == 1
            traces["cli failing sync"] = done.stdout + done.stderr
            fake.default = None
            bad_db = cli_env(
                "postgresql://postgres:" + DB_PASSWORD + "@127.0.0.1:1/x",
                fake.url,
                KEY,
                LOG_LEVEL="debug",
            )
            done = run_cli(["sync"], bad_db, fast=False)
            assert done.returncode == 1
            traces["cli unreachable db"] = done.stdout + done.stderr

            traces["audit rows"] = json.dumps(audit_rows(engine), default=str)
            traces["database dump"] = _dump(db_url)
            engine.dispose()
            # the key travelled only in the request headers, never in a URL
            assert all(KEY not in r.path for r in fake.requests)
            assert any(r.headers.get("x-litellm-api-key") == KEY for r in fake.requests)
    finally:
        for name in ("sqlalchemy.engine", "urllib3", "sync_core"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    traces["log lines"] = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert len(caplog.records) > 50  # DEBUG logging really was on
    assert "INSERT INTO" in traces["log lines"] or "COPY" in traces["log lines"]
    assert "azure-gpt" in traces["database dump"]  # the leaky models themselves were stored

    leaks = {
        where: text[max(0, text.find(MARK) - 80) : text.find(MARK) + 40]
        for where, text in traces.items()
        if MARK in text
    }
    assert not leaks, f"secrets found in: {leaks}"
    print(
        f"\n[secrets] searched {len(traces)} traces, {len(caplog.records)} log records, "
        f"{sum(len(t) for t in traces.values())} characters: no secret"
    )
    assert "vertex_project" in traces["database dump"]  # harmless params are kept
