"""The LiteLLM client: ``GET /model/info`` with retries, a circuit breaker and caches.

Retries (tenacity): 3 attempts, exponential backoff from 1 s, on connection errors, timeouts and
5xx only. The breaker counts logical requests (a request and its retries); it opens after 5
consecutive transient failures and lets one probe through after 30 s. Page views read a
5-minute cache of the catalogue; a sync always fetches fresh; the health probe is cached 30 s.

Session, clock and sleep are arguments so tests run instantly. Messages name the URL, never the
key: the key only ever travels in request headers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import requests
import urllib3
from cachetools import TTLCache
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from .breaker import CircuitBreaker
from .bulk import gc_paused
from .config import Secret
from .entry_split import NotSplittable, split_entries
from .errors import (
    CircuitOpenError,
    LiteLLMAuthError,
    LiteLLMConnectionError,
    LiteLLMDataError,
    LiteLLMServerError,
    LiteLLMTimeoutError,
    UpstreamError,
    UpstreamTransientError,
)

MODEL_INFO_PATH = "/model/info"
LIVENESS_PATH = "/health/liveliness"
NOT_LOADED_MARKER = "LLM Model List not loaded in"

RequestObserver = Callable[[str, float], None]


@dataclass(frozen=True)
class ProbeResult:
    """LiteLLM's reachability as the health page shows it."""

    reachable: bool
    latency_ms: float | None
    error_kind: str | None
    error: str | None
    breaker_state: str
    mode: str  # "live" or "mock"


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests error, short and free of headers."""
    text = str(exc.args[0] if exc.args else exc)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "timed out",
        "Connection reset",
        "IncompleteRead",
        "Connection aborted",
    ):
        if marker in text:
            return marker.lower()
    return type(exc).__name__


#: Announced lengths up to this are read into one buffer allocated up front; a larger (or
#: absurd) announcement is read piece by piece, holding only what actually arrives.
MAX_PREALLOCATED = 512 * 1024 * 1024


def _announced_length(response: requests.Response) -> int | None:
    """The body's length when the server announced a plausible one and sends it as is."""
    length = response.headers.get("Content-Length", "").strip()
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if not (length.isascii() and length.isdigit()) or encoding != "identity":
        return None
    return int(length) if int(length) <= MAX_PREALLOCATED else None


def _read_body(response: requests.Response, deadline: float, timeout: float) -> bytes:
    """The whole body, or ``requests.Timeout`` once the total deadline passes.

    ``read1`` returns whatever has arrived (instead of waiting for a full chunk), so a server
    dripping bytes is cut within one socket read of the deadline. urllib3's own errors (a cut
    body, a reset) become the requests errors the caller classifies. When the length is
    announced, the pieces go straight into one buffer of that size: collecting them and joining
    would need twice the body's memory at once (400 MB for 25,000 models), and the allocator
    keeps the freed half.
    """
    raw = response.raw
    length = _announced_length(response)
    buffer = bytearray(length) if length is not None else None
    chunks = []
    position = 0
    try:
        while True:
            chunk = raw.read1(256 * 1024, decode_content=True)
            if not chunk:
                break
            if buffer is not None and position + len(chunk) <= len(buffer):
                buffer[position:position + len(chunk)] = chunk
            else:
                chunks.append(chunk)
            position += len(chunk)
            if time.monotonic() > deadline:
                response.close()
                raise requests.Timeout(f"body not complete within {timeout:g} s: timed out")
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.Timeout(str(exc)) from None
    except urllib3.exceptions.HTTPError as exc:
        raise requests.ConnectionError(str(exc)) from None
    if buffer is None:
        return b"".join(chunks)
    if chunks or position != len(buffer):  # the server did not keep to its announced length
        raise requests.ConnectionError(
            f"body of {position} bytes where {len(buffer)} were announced")
    return buffer  # type: ignore[return-value]  # (a bytearray reads like bytes everywhere)


def parse_catalogue(body: bytes, url: str) -> list[Any]:
    """The ``data`` list of a ``/model/info`` answer; anything else is a data error."""
    try:  # entry by entry, as a sync reads it, so both accept exactly the same answers
        with gc_paused():  # ~10 containers per entry, none cyclic: no collector passes
            return [entry for _, _, entry in split_entries(body, digests=False)]
    except NotSplittable:
        pass
    try:
        with gc_paused():
            document = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:  # NaN, Infinity and huge integers are not JSON, but Python's json reads them
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise LiteLLMDataError(
                f"LiteLLM at {url} answered with invalid JSON", url=url
            ) from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise LiteLLMDataError(
            f"LiteLLM at {url} answered JSON without a 'data' list of models", url=url
        )
    return document["data"]


class LiteLLMClient:
    mode = "live"

    def __init__(
        self,
        base_url: str,
        api_key: Secret | None = None,
        *,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        attempts: int = 3,
        backoff_initial: float = 1.0,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        catalogue_ttl: float = 300.0,
        probe_ttl: float = 30.0,
        observer: RequestObserver | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._session = session or requests.Session()
        self.timeout = timeout
        self.attempts = attempts
        self.backoff_initial = backoff_initial
        self.breaker = breaker or CircuitBreaker(clock=clock)
        self._clock = clock
        self._sleep = sleep if sleep is not None else time.sleep  # looked up now: patchable
        self._observer = observer
        self._lock = threading.Lock()
        self._catalogue_cache: TTLCache[str, list[Any]] = TTLCache(1, catalogue_ttl, timer=clock)
        self._probe_cache: TTLCache[str, ProbeResult] = TTLCache(1, probe_ttl, timer=clock)
        #: HTTP attempts made by the last logical request (retries included).
        self.last_attempts = 0

    @property
    def model_info_url(self) -> str:
        return self.base_url + MODEL_INFO_PATH

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "litemaas-model-sync"}
        if self._api_key:
            key = self._api_key.reveal()
            headers["Authorization"] = f"Bearer {key}"
            headers["x-litellm-api-key"] = key
        return headers

    def _get_once(self, url: str, timeout: float) -> requests.Response:
        self.last_attempts += 1
        started = self._clock()
        try:
            # requests' timeout bounds each socket read, not the whole answer: a server that
            # drips bytes could hold a sync (and its lock) forever, so enforce a total deadline.
            deadline = time.monotonic() + timeout
            response = self._session.get(url, headers=self._headers(), timeout=timeout, stream=True)
            body = response._content = _read_body(response, deadline, timeout)
        except requests.Timeout as exc:
            self._observe("timeout", started)
            raise LiteLLMTimeoutError(
                f"LiteLLM at {url} did not answer within {timeout:g} s ({_reason(exc)})", url=url
            ) from None
        except requests.RequestException as exc:
            self._observe("connection", started)
            raise LiteLLMConnectionError(
                f"Could not reach LiteLLM at {url}: {_reason(exc)}", url=url
            ) from None
        status = response.status_code
        if status >= 500:
            text = body[:2000].decode("utf-8", "replace")
            if NOT_LOADED_MARKER in text:
                self._observe("data", started)
                raise LiteLLMDataError(
                    f"LiteLLM at {url} has no model list loaded (HTTP {status}); "
                    "this is not an empty catalogue",
                    url=url,
                    status=status,
                )
            self._observe("server", started)
            raise LiteLLMServerError(
                f"LiteLLM at {url} answered HTTP {status}", url=url, status=status
            )
        if status in (400, 401, 403):
            self._observe("authentication", started)
            raise LiteLLMAuthError(
                f"LiteLLM at {url} refused the key (HTTP {status}); check LITELLM_API_KEY",
                url=url,
                status=status,
            )
        if status >= 300:
            self._observe("data", started)
            raise LiteLLMDataError(
                f"LiteLLM at {url} answered HTTP {status}; is LITELLM_API_URL the proxy's base URL?",
                url=url,
                status=status,
            )
        self._observe("ok", started)
        return response

    def _observe(self, outcome: str, started: float) -> None:
        if self._observer is not None:
            self._observer(outcome, self._clock() - started)

    def _request(
        self, url: str, attempts: int | None = None, timeout: float | None = None
    ) -> requests.Response:
        """One logical request: breaker check, then up to ``attempts`` tries on transient errors."""
        self.last_attempts = 0
        if not self.breaker.allow():
            wait = self.breaker.seconds_until_probe()
            raise CircuitOpenError(
                f"LiteLLM at {self.base_url} failed {self.breaker.failure_threshold} times in a "
                f"row; not calling it for another {wait:.0f} s",
                url=url,
            )
        retrying = Retrying(
            stop=stop_after_attempt(attempts or self.attempts),
            wait=wait_exponential(multiplier=self.backoff_initial, min=self.backoff_initial),
            retry=retry_if_exception_type(UpstreamTransientError),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            response = retrying(self._get_once, url, timeout or self.timeout)
        except UpstreamTransientError:
            self.breaker.record_failure()
            raise
        except UpstreamError:
            self.breaker.record_success()  # LiteLLM answered: it is up, our request was wrong
            raise
        except BaseException:
            self.breaker.record_failure()  # never leave a half-open probe slot taken
            raise
        self.breaker.record_success()
        return response

    def fetch_body(self) -> bytes:
        """The raw ``/model/info`` answer, fresh (a sync checks it before parsing it)."""
        return self._request(self.model_info_url).content

    def fetch_entries(self) -> list[Any]:
        """A fresh catalogue; refreshes the page-view cache too."""
        entries = parse_catalogue(self.fetch_body(), self.model_info_url)
        with self._lock:
            self._catalogue_cache["catalogue"] = entries
        return entries

    def cached_entries(self) -> list[Any]:
        """The catalogue for page views: at most 5 minutes old."""
        with self._lock:
            cached = self._catalogue_cache.get("catalogue")
        return cached if cached is not None else self.fetch_entries()

    def clear_cache(self) -> None:
        with self._lock:
            self._catalogue_cache.clear()
            self._probe_cache.clear()

    def probe(self) -> ProbeResult:
        """Reachability and latency of LiteLLM's liveness route (no key needed), cached 30 s."""
        with self._lock:
            cached = self._probe_cache.get("probe")
        if cached is not None:
            return cached
        started = self._clock()
        try:  # one plain request, outside the breaker: a liveness answer must not close it
            self._get_once(self.base_url + LIVENESS_PATH, min(5.0, self.timeout))
            result = ProbeResult(
                True, (self._clock() - started) * 1000, None, None, self.breaker.state, self.mode
            )
        except UpstreamError as exc:
            result = ProbeResult(False, None, exc.kind, str(exc), self.breaker.state, self.mode)
        with self._lock:
            self._probe_cache["probe"] = result
        return result
