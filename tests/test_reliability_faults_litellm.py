"""LiteLLM faults, end to end: a real loopback server misbehaves, the sync fails cleanly.

For every fault: the error class, the HTTP attempts made (retries), the breaker's state, the
``models`` table unchanged (full-table fingerprint before/after), one audit row with
``success=false``, the HTTP API's answer (``sync_core.api.handle_sync``) and the CLI's
(``python -m sync_core sync --json`` in a subprocess: exit 1, a clear message, no traceback).
"""

from __future__ import annotations

import json

import pytest

from sync_core import api
from sync_core.access import Actor
from sync_core.breaker import CLOSED, HALF_OPEN, OPEN
from sync_core.config import Secret, Settings
from sync_core.litellm import LiteLLMClient
from sync_core.runtime import build_runtime
from sync_core.sync import SyncService
from tests import fake_litellm as fl
from tests.factories import entry, real_entries
from tests.reliability.helpers import (
    audit_rows,
    cli_env,
    fingerprint,
    lock_is_free,
    make_engine,
    run_cli,
    table_rows,
)

KEY = "sk-reliability-faults-5f1e"
ADMIN = Actor("reliability@example.com", "admin")
TIMEOUT = 0.15

# (id, behaviour, error kind, HTTP attempts, transient?, words the message must contain)
FAULTS = [
    ("refused", None, "connection", 3, True, "connection refused"),
    ("reset", fl.reset, "connection", 3, True, "Could not reach LiteLLM"),
    ("closed-without-answer", fl.close, "connection", 3, True, "Could not reach LiteLLM"),
    ("hang", fl.hang(5.0), "timeout", 3, True, "did not answer within"),
    (
        "slow-drip",
        fl.drip(b'{"data": [  ]}', chunk=4, interval=0.1),
        "timeout",
        3,
        True,
        "did not answer within",
    ),
    ("truncated", fl.truncated(), "connection", 3, True, "Could not reach LiteLLM"),
    ("http-500", fl.status(500, b"boom"), "server", 3, True, "HTTP 500"),
    ("http-502", fl.status(502, b"bad gateway"), "server", 3, True, "HTTP 502"),
    ("http-503", fl.status(503, b"busy"), "server", 3, True, "HTTP 503"),
    ("http-400", fl.status(400, b'{"error": "no db"}'), "authentication", 1, False, "HTTP 400"),
    ("http-401", fl.status(401, b'{"error": "auth"}'), "authentication", 1, False, "HTTP 401"),
    ("http-403", fl.status(403, b'{"error": "forbidden"}'), "authentication", 1, False, "HTTP 403"),
    ("malformed-json", fl.malformed_json, "data", 1, False, "invalid JSON"),
    ("wrong-shape", fl.wrong_shape, "data", 1, False, "without a 'data' list"),
    (
        "data-not-a-list",
        fl.status(200, b'{"data": {"model_name": "x"}}'),
        "data",
        1,
        False,
        "without a 'data' list",
    ),
    (
        "html-page",
        fl.status(200, b"<html>proxy login</html>", "text/html"),
        "data",
        1,
        False,
        "invalid JSON",
    ),
    ("not-loaded", fl.not_loaded, "data", 1, False, "no model list loaded"),
]


class Sleeps(list):
    """Records back-off sleeps instead of sleeping (truthy even when empty: tenacity would
    otherwise fall back to ``time.sleep`` for a falsy ``sleep``)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)

    def __bool__(self) -> bool:
        return True


@pytest.fixture
def fake():
    with fl.FakeLiteLLM(real_entries(), key=KEY) as server:
        yield server


@pytest.fixture
def engine(pg_url):
    eng = make_engine(pg_url)
    yield eng
    eng.dispose()


def _client(fake, sleeps, **kw):
    return LiteLLMClient(fake.url, Secret(KEY), timeout=TIMEOUT, sleep=sleeps, **kw)


@pytest.mark.parametrize(
    ("behaviour", "kind", "attempts", "transient", "words"),
    [pytest.param(*f[1:], id=f[0]) for f in FAULTS],
)
def test_fault_fails_cleanly_everywhere(
    fake, engine, pg_url, behaviour, kind, attempts, transient, words
):
    sleeps = Sleeps()
    client = _client(fake, sleeps)
    service = SyncService(engine, client)
    assert service.run(trigger="manual", actor=ADMIN).success  # the previous, good state
    before, audits_before = fingerprint(engine), len(audit_rows(engine))
    if behaviour is None:
        fake.stop()
    else:
        fake.default = behaviour

    # the engine
    requests_before = fake.count("/model/info")
    result = service.run(trigger="manual", actor=ADMIN)
    assert not result.success
    assert result.error_kind == kind, result.error_message
    assert words in result.error_message and fake.url in result.error_message
    assert client.last_attempts == attempts
    if behaviour is not None:
        assert fake.count("/model/info") - requests_before == attempts
    assert sleeps == ([1.0, 2.0] if transient else [])  # exponential back-off between retries
    assert client.breaker.state == CLOSED  # one failed sync does not open it ...
    assert client.breaker.consecutive_failures == (1 if transient else 0)  # ... but counts
    assert result.new_models == result.updated_models == result.unavailable_models == 0
    assert fingerprint(engine) == before
    audits = audit_rows(engine)
    assert len(audits) == audits_before + 1
    row = audits[-1]
    assert row["success"] is False and row["error_message"] == result.error_message
    assert row["metadata"]["errorKind"] == kind
    assert lock_is_free(engine, wait=0)

    # the HTTP API
    settings = Settings(
        litellm_url=fake.url,
        litellm_api_key=Secret(KEY),
        database_url=pg_url,
        sync_api_token=Secret("tok-faults"),
    )
    runtime = build_runtime(settings, source=_client(fake, Sleeps()), engine=engine)
    answer = api.handle_sync(runtime, authorization="Bearer tok-faults", body=b"{}")
    assert answer.status == 502
    assert answer.body["success"] is False and answer.body["errorKind"] == kind
    assert words in answer.body["errorMessage"]
    assert fingerprint(engine) == before

    # the CLI, in a subprocess (real entry point, short timeout, back-off not slept)
    done = run_cli(
        ["sync", "--json"], cli_env(pg_url, fake.url, KEY, RELIABILITY_TIMEOUT=str(TIMEOUT))
    )
    assert done.returncode == 1, done.stderr
    out = json.loads(done.stdout)
    assert out["success"] is False and out["errorKind"] == kind
    assert words in out["errorMessage"]
    assert "Traceback" not in done.stderr and KEY not in done.stdout + done.stderr
    assert f"slept {[1.0, 2.0] if transient else []}" in done.stderr
    assert fingerprint(engine) == before
    assert len(audit_rows(engine)) == audits_before + 3
    assert lock_is_free(engine, wait=0)


@pytest.mark.parametrize(
    "behaviour",
    [fl.status(401, b"{}"), fl.not_loaded, fl.malformed_json],
    ids=["401", "not-loaded", "malformed"],
)
def test_real_cli_entry_point_reports_permanent_faults(fake, engine, pg_url, behaviour):
    """Unpatched ``python -m sync_core`` (no wrapper): exit 1, one clear line, no traceback."""
    SyncService(engine, _client(fake, Sleeps())).run(trigger="manual", actor=ADMIN)
    before = fingerprint(engine)
    fake.default = behaviour
    done = run_cli(["sync"], cli_env(pg_url, fake.url, KEY), fast=False)
    assert done.returncode == 1
    assert "Sync failed: LiteLLM at " + fake.url in done.stderr
    assert "Traceback" not in done.stderr and KEY not in done.stdout + done.stderr
    assert fingerprint(engine) == before


def test_real_cli_retries_a_503_with_real_backoff(fake, engine, pg_url):
    """Unpatched entry point: 503, 503, then the answer → the sync succeeds after 2 retries."""
    fake.script(fl.status(503, b"busy"), fl.status(503, b"busy"))
    done = run_cli(["sync", "--json"], cli_env(pg_url, fake.url, KEY), fast=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["newModels"] == 8
    assert fake.count("/model/info") == 3


def test_wrong_key_is_an_authentication_error(fake, engine, pg_url):
    SyncService(engine, _client(fake, Sleeps())).run(trigger="manual", actor=ADMIN)
    before = fingerprint(engine)
    done = run_cli(["sync", "--json"], cli_env(pg_url, fake.url, "sk-wrong-key"))
    out = json.loads(done.stdout)
    assert done.returncode == 1 and out["errorKind"] == "authentication"
    assert "check LITELLM_API_KEY" in out["errorMessage"] and "sk-wrong-key" not in done.stdout
    assert fingerprint(engine) == before


def test_breaker_opens_after_five_failed_syncs_and_recovers(fake, engine):
    now = [1000.0]
    sleeps = Sleeps()
    client = _client(fake, sleeps, clock=lambda: now[0])
    service = SyncService(engine, client)
    assert service.run(trigger="manual", actor=ADMIN).success
    before = fingerprint(engine)
    fake.default = fl.status(503, b"busy")
    for _ in range(5):
        assert service.run(trigger="schedule", actor=ADMIN).error_kind == "server"
    assert client.breaker.state == OPEN
    sent = fake.count("/model/info")
    opened = service.run(trigger="schedule", actor=ADMIN)
    assert opened.error_kind == "circuit_open" and "not calling it" in opened.error_message
    assert fake.count("/model/info") == sent  # the open breaker sends nothing
    assert client.last_attempts == 0
    now[0] += 31
    assert client.breaker.state == HALF_OPEN
    fake.default = None
    recovered = service.run(trigger="schedule", actor=ADMIN)
    assert recovered.success and client.breaker.state == CLOSED
    assert fake.count("/model/info") == sent + 1  # exactly one probe
    assert fingerprint(engine) == before  # the same catalogue: nothing to change
    kinds = [(a["success"], a["metadata"]["errorKind"]) for a in audit_rows(engine)]
    assert kinds == [(True, None)] + [(False, "server")] * 5 + [
        (False, "circuit_open"),
        (True, None),
    ]


def test_empty_catalogue_is_refused_unless_overridden(fake, engine, pg_url):
    """The guard: an empty list never marks every model unavailable without an explicit override."""
    client = _client(fake, Sleeps())
    SyncService(engine, client).run(trigger="manual", actor=ADMIN)
    before = fingerprint(engine)
    fake.default = fl.empty_list
    result = SyncService(engine, client).run(trigger="manual", actor=ADMIN)
    assert not result.success and result.error_kind == "guard"
    assert "no usable models" in result.error_message and "refused" in result.error_message
    assert client.breaker.state == CLOSED and client.last_attempts == 1
    assert fingerprint(engine) == before and audit_rows(engine)[-1]["success"] is False

    env = cli_env(pg_url, fake.url, KEY)
    done = run_cli(["sync", "--json"], env, fast=False)
    out = json.loads(done.stdout)
    assert done.returncode == 1 and out["errorKind"] == "guard"
    assert "would mark all 8 available models unavailable" in out["errorMessage"]
    done = run_cli(["sync"], env, fast=False)
    assert done.returncode == 1 and "refused (an admin can override explicitly)" in done.stderr
    assert fingerprint(engine) == before
    settings = Settings(litellm_url=fake.url, database_url=pg_url, sync_api_token=Secret("t"))
    runtime = build_runtime(settings, source=client, engine=engine)
    answer = api.handle_sync(runtime, authorization="Bearer t", body=b'{"markUnavailable": true}')
    assert answer.status == 409 and answer.body["errorKind"] == "guard"
    assert fingerprint(engine) == before

    # a catalogue whose every entry is broken is just as empty
    fake.default = fl.status(200, json.dumps({"data": [{"model_name": 5}, "junk", None]}))
    assert SyncService(engine, client).run(trigger="manual", actor=ADMIN).error_kind == "guard"
    assert fingerprint(engine) == before

    # markUnavailable off: nothing would be marked, so nothing to guard
    fake.default = fl.empty_list
    done = run_cli(["sync", "--json", "--no-mark-unavailable"], env, fast=False)
    assert done.returncode == 0 and fingerprint(engine) == before

    # the explicit override marks them all unavailable and deletes nothing
    done = run_cli(["sync", "--json", "--allow-empty-catalogue"], env, fast=False)
    out = json.loads(done.stdout)
    assert done.returncode == 0 and out["unavailableModels"] == 8
    assert fingerprint(engine) != before
    assert len(audit_rows(engine)) == 8


def test_empty_catalogue_on_an_empty_database_is_a_plain_success(fake, engine):
    fake.default = fl.empty_list
    result = SyncService(engine, _client(fake, Sleeps())).run(trigger="manual", actor=ADMIN)
    assert result.success and result.total_models == 0


def test_partly_malformed_list_syncs_the_good_entries(fake, engine, pg_url):
    good = real_entries()
    bad = [
        "not an object",
        None,
        42,
        [],
        {"model_info": {}},
        {"model_name": ""},
        {"model_name": ["list"]},
        entry("bad-price", input_cost_per_token="free"),
        entry("bad-context", max_input_tokens="lots"),
        entry("bad-flag", supports_vision="sometimes"),
        {"model_name": "bad-info", "model_info": [1, 2], "litellm_params": {}},
        {"model_name": "bad-params", "model_info": {}, "litellm_params": "openai/gpt"},
    ]
    fake.entries = good[:4] + bad + good[4:]
    done = run_cli(["sync", "--json"], cli_env(pg_url, fake.url, KEY), fast=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["success"] is True and out["newModels"] == 8
    assert len(out["errors"]) == len(bad)
    assert any(
        e.startswith("bad-price: input_cost_per_token must be a number") for e in out["errors"]
    )
    rows = {
        r[0] for r in table_rows(engine)
    }
    assert rows == {e["model_name"] for e in good}
    last = audit_rows(engine)[-1]
    assert last["success"] is True and last["metadata"]["counts"]["errors"] == len(bad)


def test_a_dripping_body_is_cut_at_the_total_deadline(fake):
    import time

    body = b'{"data": [], "pad": "' + b" " * 300 + b'"}'  # 3 s at 8 bytes / 0.05 s
    fake.default = fl.drip(body, chunk=8, interval=0.05)
    client = LiteLLMClient(fake.url, Secret(KEY), timeout=0.3, attempts=1, sleep=Sleeps())
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        client.fetch_entries()
    elapsed = time.monotonic() - started
    assert getattr(caught.value, "kind", None) == "timeout"
    assert elapsed < 1.5, f"the 0.3 s timeout let the drip run {elapsed:.1f} s"
