"""The LiteLLM client against a real HTTP server on loopback (tests/fake_litellm.py).

Every error class: its exception and ``kind``, the attempts made, the backoff sleeps asked for,
a message naming the URL and never the key. Then the breaker, the caches, the probe and mock mode.
Clocks and sleeps are fakes; only the network is real (client timeout 0.5 s).
"""

from __future__ import annotations

import gzip
import json
import math
import threading
import time
import traceback

import pytest
import requests
import responses

from sync_core.config import ConfigError, Secret, Settings
from sync_core.errors import (
    CircuitOpenError,
    LiteLLMAuthError,
    LiteLLMConnectionError,
    LiteLLMDataError,
    LiteLLMServerError,
    LiteLLMTimeoutError,
    UpstreamError,
)
from sync_core.litellm import LiteLLMClient, parse_catalogue
from sync_core.mock_litellm import MockLiteLLMClient
from sync_core.runtime import make_source
from tests.factories import real_entries
from tests.fake_litellm import (
    FakeLiteLLM,
    close,
    delay,
    drip,
    empty_list,
    hang,
    malformed_json,
    not_loaded,
    reset,
    status,
    truncated,
    wrong_shape,
)

KEY = "sk-Zq9-DISTINCTIVE-litellm-key-4471"


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake():
    with FakeLiteLLM(real_entries(), key=KEY) as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def client_for(url: str, clock: Clock, sleeps: Sleeps, key: str | None = KEY,
               **kwargs) -> LiteLLMClient:
    return LiteLLMClient(url, Secret(key) if key else None, timeout=0.5, clock=clock,
                         sleep=sleeps, **kwargs)


@pytest.fixture
def client(fake: FakeLiteLLM, clock: Clock, sleeps: Sleeps) -> LiteLLMClient:
    return client_for(fake.url, clock, sleeps)


def assert_no_key(*things: object) -> None:
    for thing in things:
        texts = [str(thing), repr(thing)]
        if isinstance(thing, BaseException):
            texts.append("".join(traceback.format_exception(thing)))
            texts.extend(str(a) for a in thing.args)
        for text in texts:
            assert KEY not in text


# --- success ----------------------------------------------------------------------------------


def test_fetch_sends_the_key_in_both_headers(fake, client):
    assert client.fetch_entries() == real_entries()
    assert client.last_attempts == 1
    [req] = fake.requests
    assert req.path == "/model/info"
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.headers["x-litellm-api-key"] == KEY
    assert_no_key(vars(client), client)


def test_trailing_slash_in_base_url(fake, clock, sleeps):
    client = client_for(fake.url + "/", clock, sleeps)
    assert len(client.fetch_entries()) == 8
    assert fake.requests[0].path == "/model/info"


def _framed(encoding: str | None, chunked: bool):
    """The catalogue gzip-compressed and/or chunked (no Content-Length) instead of plain."""
    def run(h) -> None:
        raw = h.fake.catalogue_body()
        if encoding == "gzip":
            raw = gzip.compress(raw)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        if encoding:
            h.send_header("Content-Encoding", encoding)
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            for start in range(0, len(raw), 1000):
                piece = raw[start:start + 1000]
                h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            h.wfile.write(b"0\r\n\r\n")
        else:
            h.send_header("Content-Length", str(len(raw)))
            h.end_headers()
            h.wfile.write(raw)
    return run


@pytest.mark.parametrize(("encoding", "chunked"), [(None, False), ("gzip", False),
                                                   (None, True), ("gzip", True)])
def test_the_body_is_read_whole_however_it_is_framed(fake, client, encoding, chunked):
    fake.script(_framed(encoding, chunked))
    body = client.fetch_body()
    assert bytes(body) == fake.catalogue_body()
    assert client.fetch_entries() == real_entries()


def test_a_body_shorter_than_announced_is_a_connection_error(fake, client, sleeps):
    fake.default = truncated(missing=1)
    with pytest.raises(LiteLLMConnectionError):
        client.fetch_body()
    assert client.last_attempts == 3  # transient: retried


def test_empty_list_is_an_empty_catalogue(fake, client):
    fake.script(empty_list)
    assert client.fetch_entries() == []
    assert client.last_attempts == 1


def test_nan_infinity_and_huge_integers_fall_back_to_stdlib_json(fake, client):
    fake.body = (b'{"data": [{"model_name": "m", "model_info": {"input_cost_per_token": NaN, '
                 b'"output_cost_per_token": Infinity, '
                 b'"max_tokens": 123456789012345678901234567890}}]}')
    [entry] = client.fetch_entries()
    info = entry["model_info"]
    assert math.isnan(info["input_cost_per_token"]) and math.isinf(info["output_cost_per_token"])
    assert info["max_tokens"] == 123456789012345678901234567890


def test_slow_drip_within_timeout_is_fine(fake, client):
    fake.script(drip(b'{"data": []}', chunk=4, interval=0.05))
    assert client.fetch_entries() == []


def test_transient_failures_then_success(fake, client, sleeps):
    fake.script(status(503, b"busy"), reset)
    assert len(client.fetch_entries()) == 8
    assert client.last_attempts == 3 and fake.count("/model/info") == 3
    assert sleeps == [1, 2]
    assert client.breaker.state == "closed" and client.breaker.consecutive_failures == 0


# --- error classes ----------------------------------------------------------------------------

TRANSIENT = [
    pytest.param(reset, LiteLLMConnectionError, "connection", id="reset"),
    pytest.param(close, LiteLLMConnectionError, "connection", id="closed-without-answer"),
    pytest.param(truncated(), LiteLLMConnectionError, "connection", id="truncated-body"),
    pytest.param(hang(3.0), LiteLLMTimeoutError, "timeout", id="hang"),
    pytest.param(status(500, b"Internal Server Error"), LiteLLMServerError, "server", id="500"),
    pytest.param(status(502, b"bad gateway"), LiteLLMServerError, "server", id="502"),
    pytest.param(status(503, {"error": KEY}), LiteLLMServerError, "server", id="503-echoing-key"),
]
PERMANENT = [
    pytest.param(status(400, {"error": {"message": "No connected db."}}), LiteLLMAuthError,
                 "authentication", id="400"),
    pytest.param(status(401, {"error": {"message": f"Malformed API Key {KEY}"}}),
                 LiteLLMAuthError, "authentication", id="401-echoing-key"),
    pytest.param(status(403, b"forbidden"), LiteLLMAuthError, "authentication", id="403"),
    pytest.param(not_loaded, LiteLLMDataError, "data", id="not-loaded-500"),
    pytest.param(status(404, {"detail": "Not Found"}), LiteLLMDataError, "data", id="404"),
    pytest.param(status(422, b"{}"), LiteLLMDataError, "data", id="422"),
    pytest.param(malformed_json, LiteLLMDataError, "data", id="malformed-json"),
    pytest.param(wrong_shape, LiteLLMDataError, "data", id="wrong-shape"),
    pytest.param(status(200, b'{"data": {}}'), LiteLLMDataError, "data", id="data-not-a-list"),
    pytest.param(status(200, b"[]"), LiteLLMDataError, "data", id="top-level-list"),
    pytest.param(status(200, b"\xff\xfe garbage"), LiteLLMDataError, "data", id="not-utf8"),
    pytest.param(status(200, b"[" * 100_000), LiteLLMDataError, "data", id="too-deep"),
]


@pytest.mark.parametrize(("behaviour", "error", "kind"), TRANSIENT)
def test_transient_errors_are_retried_three_times(fake, client, sleeps, behaviour, error, kind):
    fake.default = behaviour
    with pytest.raises(error) as info:
        client.fetch_entries()
    assert info.value.kind == kind
    assert client.last_attempts == 3 and fake.count("/model/info") == 3
    assert sleeps == [1, 2]
    assert fake.url + "/model/info" in str(info.value) and info.value.url == client.model_info_url
    if kind == "timeout":
        assert "within 0.5 s" in str(info.value)
    assert_no_key(info.value)
    assert client.breaker.consecutive_failures == 1


@pytest.mark.parametrize(("behaviour", "error", "kind"), PERMANENT)
def test_permanent_errors_are_not_retried(fake, client, sleeps, behaviour, error, kind):
    fake.default = behaviour
    with pytest.raises(error) as info:
        client.fetch_entries()
    assert info.value.kind == kind
    assert client.last_attempts == 1 and fake.count("/model/info") == 1
    assert sleeps == []
    assert fake.url + "/model/info" in str(info.value)
    assert_no_key(info.value)
    assert client.breaker.state == "closed" and client.breaker.consecutive_failures == 0


def test_not_loaded_is_not_an_empty_catalogue(fake, client):
    fake.script(not_loaded)
    with pytest.raises(LiteLLMDataError, match="no model list loaded") as info:
        client.fetch_entries()
    assert info.value.status == 500


def test_connection_refused(fake, clock, sleeps):
    url = fake.url
    fake.stop()
    client = client_for(url, clock, sleeps)
    with pytest.raises(LiteLLMConnectionError, match="connection refused") as info:
        client.fetch_entries()
    assert info.value.kind == "connection" and client.last_attempts == 3 and sleeps == [1, 2]
    assert url + "/model/info" in str(info.value)
    assert_no_key(info.value)


def test_slow_drip_beyond_the_timeout_is_a_timeout(fake, clock, sleeps):
    client = client_for(fake.url, clock, sleeps, attempts=1)
    fake.script(drip(b'{"data": [], "pad": "' + b" " * 40 + b'"}', chunk=8, interval=0.15))
    with pytest.raises(LiteLLMTimeoutError):
        client.fetch_entries()  # ~1 s of drip, each gap < 0.5 s


def test_wrong_key_and_no_key_are_authentication_errors(fake, clock, sleeps):
    wrong = client_for(fake.url, clock, sleeps, key="sk-wrong")
    with pytest.raises(LiteLLMAuthError, match="LITELLM_API_KEY") as info:
        wrong.fetch_entries()
    assert info.value.status == 400
    anonymous = client_for(fake.url, clock, sleeps, key=None)
    with pytest.raises(LiteLLMAuthError) as info:
        anonymous.fetch_entries()
    assert info.value.status == 401
    assert "Authorization" not in fake.requests[-1].headers
    assert "x-litellm-api-key" not in fake.requests[-1].headers
    assert sleeps == [] and fake.count() == 2


# --- fine-grained failures through `responses` --------------------------------------------------

URL = "http://litellm.test:4000"


@pytest.mark.parametrize(("raised", "error"), [
    (requests.ConnectTimeout("connect timed out"), LiteLLMTimeoutError),
    (requests.ReadTimeout("read timed out"), LiteLLMTimeoutError),
    (requests.exceptions.SSLError("certificate verify failed"), LiteLLMConnectionError),
    (requests.exceptions.ChunkedEncodingError("Connection broken"), LiteLLMConnectionError),
    (requests.exceptions.ContentDecodingError("bad gzip"), LiteLLMConnectionError),
])
@responses.activate
def test_requests_exceptions_map_to_transient_errors(clock, sleeps, raised, error):
    responses.get(URL + "/model/info", body=raised)
    client = client_for(URL, clock, sleeps)
    with pytest.raises(error) as info:
        client.fetch_entries()
    assert len(responses.calls) == 3 and sleeps == [1, 2]
    assert URL + "/model/info" in str(info.value)
    assert_no_key(info.value)
    assert responses.calls[0].request.headers["x-litellm-api-key"] == KEY


@responses.activate
def test_unexpected_error_in_probe_does_not_wedge_the_breaker(clock, sleeps):
    client = client_for(URL, clock, sleeps)
    responses.get(URL + "/model/info", status=503)
    for _ in range(5):
        with pytest.raises(LiteLLMServerError):
            client.fetch_entries()
    clock.advance(30)
    responses.replace(responses.GET, URL + "/model/info", body=RuntimeError("bug in a hook"))
    with pytest.raises(RuntimeError):
        client.fetch_entries()
    responses.replace(responses.GET, URL + "/model/info", json={"data": []})
    clock.advance(30)
    assert client.fetch_entries() == []


# --- circuit breaker through the client -------------------------------------------------------


def _fail(client: LiteLLMClient, times: int, error=UpstreamError) -> None:
    for _ in range(times):
        with pytest.raises(error):
            client.fetch_entries()


def test_breaker_opens_after_five_failed_logical_requests(fake, client, sleeps):
    fake.default = status(503)
    _fail(client, 4, LiteLLMServerError)
    assert client.breaker.state == "closed"
    _fail(client, 1, LiteLLMServerError)
    assert client.breaker.state == "open" and fake.count() == 15
    sleeps.clear()
    with pytest.raises(CircuitOpenError) as info:
        client.fetch_entries()
    assert info.value.kind == "circuit_open" and fake.count() == 15 and sleeps == []
    assert fake.url in str(info.value) and "30 s" in str(info.value)
    assert_no_key(info.value)


def test_refused_request_reports_zero_attempts(fake, client):
    fake.default = status(503)
    _fail(client, 5)
    with pytest.raises(CircuitOpenError):
        client.fetch_entries()
    assert client.last_attempts == 0


def test_breaker_counts_consecutive_failures_only(fake, client):
    fake.default = reset
    _fail(client, 4, LiteLLMConnectionError)
    fake.default = None
    client.fetch_entries()
    fake.default = reset
    _fail(client, 4, LiteLLMConnectionError)
    assert client.breaker.state == "closed"


@pytest.mark.parametrize("behaviour", [status(401), status(400), status(404), not_loaded,
                                       malformed_json, wrong_shape])
def test_4xx_and_data_errors_do_not_open_the_breaker(fake, client, behaviour):
    fake.default = behaviour
    _fail(client, 10, (LiteLLMAuthError, LiteLLMDataError))
    assert client.breaker.state == "closed" and fake.count() == 10


def test_one_probe_after_30s_closes_on_success(fake, client, clock):
    fake.default = status(503)
    _fail(client, 5)
    clock.advance(29.9)
    _fail(client, 1, CircuitOpenError)
    assert fake.count() == 15
    clock.advance(0.1)
    assert client.breaker.state == "half_open"
    fake.default = None
    assert len(client.fetch_entries()) == 8
    assert client.breaker.state == "closed" and fake.count() == 16
    client.fetch_entries()
    assert fake.count() == 17


def test_failed_probe_reopens_for_another_30s(fake, client, clock):
    fake.default = status(503)
    _fail(client, 5)
    clock.advance(30)
    _fail(client, 1, LiteLLMServerError)  # the probe (one logical request) fails
    assert client.breaker.state == "open"
    count = fake.count()
    clock.advance(29)
    _fail(client, 1, CircuitOpenError)
    assert fake.count() == count
    clock.advance(1)
    fake.default = None
    client.fetch_entries()
    assert client.breaker.state == "closed"


def test_only_one_probe_goes_out_while_it_is_in_flight(fake, client, clock):
    fake.default = status(503)
    _fail(client, 5)
    clock.advance(30)
    fake.default = delay(0.4)
    results: list[object] = []
    probe = threading.Thread(target=lambda: results.append(client.fetch_entries()))
    probe.start()
    deadline = time.monotonic() + 2
    while fake.count() < 16 and time.monotonic() < deadline:
        time.sleep(0.01)
    _fail(client, 3, CircuitOpenError)  # refused at once while the probe is out
    probe.join(2)
    assert len(results[0]) == 8 and fake.count() == 16
    assert client.breaker.state == "closed"


# --- caches -----------------------------------------------------------------------------------


def test_cached_entries_live_five_minutes(fake, client, clock):
    assert len(client.cached_entries()) == 8
    clock.advance(299)
    client.cached_entries()
    assert fake.count() == 1
    clock.advance(2)
    client.cached_entries()
    assert fake.count() == 2


def test_fetch_entries_always_hits_the_server_and_refreshes_the_cache(fake, client, clock):
    for _ in range(3):
        client.fetch_entries()
    assert fake.count() == 3
    clock.advance(200)
    client.fetch_entries()
    clock.advance(250)
    client.cached_entries()
    assert fake.count() == 4


def test_clear_cache_and_expired_cache_refetch(fake, client, clock):
    client.cached_entries()
    client.clear_cache()
    client.cached_entries()
    assert fake.count() == 2
    clock.advance(301)
    fake.default = status(401)
    with pytest.raises(LiteLLMAuthError):
        client.cached_entries()  # no stale catalogue served once expired


def test_probe_is_cached_30s(fake, client, clock):
    first = client.probe()
    assert first.reachable and first.mode == "live" and first.breaker_state == "closed"
    assert first.error is None and first.error_kind is None and first.latency_ms is not None
    clock.advance(29)
    assert client.probe() is first
    clock.advance(2)
    client.probe()
    assert fake.count("/health/liveliness") == 2 and fake.count("/model/info") == 0


def test_probe_measures_latency(fake):
    client = LiteLLMClient(fake.url, Secret(KEY), timeout=0.5)
    fake.script(delay(0.1), path="/health/liveliness")
    result = client.probe()
    assert result.reachable and 90 <= result.latency_ms < 1000


def test_probe_failure_is_one_attempt_and_reported(fake, client, sleeps):
    fake.script(status(503, KEY), path="/health/liveliness")
    result = client.probe()
    assert not result.reachable and result.error_kind == "server" and result.latency_ms is None
    assert fake.count("/health/liveliness") == 1 and sleeps == []
    assert fake.url + "/health/liveliness" in result.error
    assert_no_key(result)


def test_probe_times_out_quickly(fake, client):
    fake.script(hang(3.0), path="/health/liveliness")
    started = time.monotonic()
    assert client.probe().error_kind == "timeout"
    assert time.monotonic() - started < 1.5


def test_probe_reports_an_open_breaker(fake, client):
    fake.default = status(503)
    _fail(client, 5)
    fake.default = None
    result = client.probe()
    # the probe pings liveness outside the breaker: it reports the breaker, never closes it
    assert result.reachable and result.breaker_state == "open"
    assert fake.count("/health/liveliness") == 1
    assert client.breaker.state == "open"


# --- mock mode --------------------------------------------------------------------------------


def test_mock_catalogue_is_realistic():
    client = MockLiteLLMClient()
    entries = client.fetch_entries()
    names = {e["model_name"] for e in entries if "*" not in e["model_name"]}
    assert len(names) >= 14
    infos = [e["model_info"] for e in entries]
    assert any(i.get("mode") == "embedding" for i in infos)
    assert any(i.get("supports_vision") for i in infos)
    assert any(i.get("supports_function_calling") for i in infos)
    assert sum(1 for i in infos if (i.get("input_cost_per_token") or 0) > 0) >= 10
    providers = {e["litellm_params"]["model"].split("/", 1)[0] for e in entries}
    assert len(providers) >= 5
    entries[0]["model_name"] = "mutated"
    assert client.fetch_entries()[0]["model_name"] != "mutated"
    probe = client.probe()
    assert probe.reachable and probe.mode == "mock" and client.mode == "mock"


def test_mock_previous_snapshot_and_unknown_snapshot():
    assert MockLiteLLMClient("previous").fetch_entries() != MockLiteLLMClient().fetch_entries()
    with pytest.raises(ValueError, match="unknown mock snapshot"):
        MockLiteLLMClient("nope")


@pytest.mark.parametrize("env", [{}, {"NODE_ENV": "development"}])
def test_make_source_is_mock_only_without_url_in_development(env):
    assert isinstance(make_source(Settings.from_env(env)), MockLiteLLMClient)


@pytest.mark.parametrize("env", [
    {"LITELLM_API_URL": "http://litellm:4000"},
    {"LITELLM_BASE_URL": "http://litellm:4000"},
    {"LITELLM_API_URL": "http://litellm:4000", "NODE_ENV": "development"},
    {"LITELLM_API_URL": "http://litellm:4000", "NODE_ENV": "production"},
])
def test_make_source_is_live_whenever_a_url_is_set(env):
    source = make_source(Settings.from_env(env))
    assert isinstance(source, LiteLLMClient) and source.base_url == "http://litellm:4000"


def test_production_never_falls_back_to_mock():
    with pytest.raises(ConfigError):
        Settings.from_env({"NODE_ENV": "production"})
    try:
        source = make_source(Settings(node_env="production"))
    except (AssertionError, ConfigError):
        return
    assert not isinstance(source, MockLiteLLMClient)


def test_make_source_client_talks_to_the_configured_proxy(fake):
    source = make_source(Settings.from_env({"LITELLM_API_URL": fake.url, "LITELLM_API_KEY": KEY}))
    assert len(source.fetch_entries()) == 8
    assert fake.requests[0].headers["x-litellm-api-key"] == KEY


def test_parse_catalogue_direct():
    assert parse_catalogue(json.dumps({"data": [1]}).encode(), "u") == [1]
    with pytest.raises(LiteLLMDataError, match="'data' list"):
        parse_catalogue(b'{"data": null}', "http://x/model/info")


# --- the fake itself (other suites rely on it) ------------------------------------------------


def test_fake_speaks_like_litellm(fake):
    good = {"Authorization": f"Bearer {KEY}"}
    assert requests.get(fake.url + "/v1/model/info", headers=good).json()["data"]
    assert requests.get(fake.url + "/model/info", headers={"x-litellm-api-key": KEY}).ok
    none = requests.get(fake.url + "/model/info")
    assert none.status_code == 401 and none.json()["error"]["type"] == "auth_error"
    wrong = requests.get(fake.url + "/model/info", headers={"x-litellm-api-key": "sk-x"})
    assert wrong.status_code == 400 and wrong.json()["error"]["message"] == "No connected db."
    bare = requests.get(fake.url + "/model/info", headers={"Authorization": KEY})
    assert bare.status_code == 401 and "Malformed API Key" in bare.text
    assert requests.get(fake.url + "/health/liveliness").json() == "I'm alive!"
    assert requests.get(fake.url + "/health/readiness").json()["status"] == "healthy"
    assert fake.count("/model/info") == 5 and fake.count("/v1/model/info") == 5
    assert fake.request_count == 7


def test_fake_stops_and_restarts_on_the_same_port():
    with FakeLiteLLM(key=None) as server:
        server.script(hang(30))
        pending = threading.Thread(target=lambda: pytest.raises(
            requests.RequestException, requests.get, server.url + "/model/info", timeout=5))
        pending.start()
        time.sleep(0.1)
        started = time.monotonic()
        server.stop()
        with pytest.raises(requests.ConnectionError):
            requests.get(server.url + "/health/liveliness", timeout=1)
        pending.join(2)
        assert time.monotonic() - started < 1.5  # a hanging request is cut short by stop()
        server.start()
        assert requests.get(server.url + "/model/info", timeout=1).json() == {"data": []}


@pytest.mark.parametrize("length", ["\u00b2", "10000000000000", " 12 ", "-5"])
def test_an_odd_or_absurd_content_length_is_never_trusted_up_front(fake, client, sleeps, length):
    def odd(h) -> None:
        raw = h.fake.catalogue_body()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", length)
        h.end_headers()
        h.wfile.write(raw)
        h.close_connection = True

    fake.default = odd
    try:
        entries = client.fetch_entries()
    except (LiteLLMConnectionError, LiteLLMDataError) as exc:  # a classified error, never a crash
        assert "LiteLLM" in str(exc)
    else:
        assert entries == real_entries()  # what arrived, read piece by piece
