"""A fake LiteLLM proxy on loopback that misbehaves on cue (for tests and benchmarks).

    with FakeLiteLLM(entries=[...], key="sk-test") as fake:
        fake.script(hang(2.0), truncated())     # the next two /model/info requests misbehave
        client = LiteLLMClient(fake.url, Secret("sk-test"), timeout=0.5)
        ...
        assert fake.count("/model/info") == 3
        assert fake.requests[0].headers["x-litellm-api-key"] == "sk-test"

It is a real ``ThreadingHTTPServer`` on 127.0.0.1 (a free port unless one is given), serving
``GET /model/info`` and ``/v1/model/info`` (``{"data": entries}`` or the raw ``body`` bytes),
``/health/liveliness`` and ``/health/readiness`` (no auth). The key is checked like LiteLLM 1.108
without a database: no key -> 401 auth_error, a wrong key -> 400 "No connected db.", an
``Authorization`` header without ``Bearer `` -> 401 "Malformed API Key". Every header that is
sent must carry the right key. ``key=None`` turns auth off.

Behaviours are callables ``(handler) -> None``; :meth:`FakeLiteLLM.script` queues them, one per
matching request, and ``fake.default`` (if set) applies once the queue is empty. ``normal`` is
the real answer (auth, then the catalogue). After :meth:`stop` the port refuses connections.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NOT_LOADED_BODY = (b'{"error":{"message":"{\'error\': \'LLM Model List not loaded in. '
                   b'Make sure you passed models in your config.yaml or on the '
                   b'LiteLLM Admin UI.\'}",'
                   b'"type":"internal_server_error","param":"None","code":"500"}}')
MODEL_INFO_PATHS = ("/model/info", "/v1/model/info")

Behaviour = Callable[["_Handler"], None]


def _error(message: str, type_: str, code: int) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "param": "None",
                                 "code": str(code)}}).encode()


# --- behaviours -------------------------------------------------------------------------------

def normal(h: _Handler) -> None:
    """The real answer: auth check, then the route's body."""
    h.fake._answer(h)


def status(code: int, body: bytes | str | Any = b"", content_type: str = "application/json"
           ) -> Behaviour:
    """Answer ``code`` with ``body`` (bytes, str, or anything JSON-serialisable)."""
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    raw = body.encode() if isinstance(body, str) else body
    return lambda h: h.send_body(code, raw, content_type)


def hang(seconds: float, then: Behaviour | None = None) -> Behaviour:
    """Say nothing for ``seconds`` (cut short by stop()), then behave as ``then`` or close."""
    def run(h: _Handler) -> None:
        if not h.fake._stopping.wait(seconds) and then is not None:
            then(h)
    return run


def delay(seconds: float) -> Behaviour:
    """Answer normally, ``seconds`` late."""
    return hang(seconds, normal)


def drip(body: bytes | None = None, chunk: int = 16, interval: float = 0.1) -> Behaviour:
    """200 with a correct Content-Length, sent ``chunk`` bytes every ``interval`` seconds."""
    def run(h: _Handler) -> None:
        raw = h.fake.catalogue_body() if body is None else body
        h.send_head(200, len(raw))
        for i in range(0, len(raw), chunk):
            if h.fake._stopping.wait(interval):
                return
            h.wfile.write(raw[i:i + chunk])
            h.wfile.flush()
    return run


def truncated(body: bytes | None = None, missing: int = 100) -> Behaviour:
    """200 announcing ``missing`` more bytes than it sends, then close."""
    def run(h: _Handler) -> None:
        raw = h.fake.catalogue_body() if body is None else body
        h.send_head(200, len(raw) + missing)
        h.wfile.write(raw)
    return run


def close(h: _Handler) -> None:
    """Close the connection without answering."""
    h.close_connection = True


def reset(h: _Handler) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), without answering."""
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.connection.close()


malformed_json = status(200, b'{"data": [{"model_name": "gpt-4o", ')
wrong_shape = status(200, b'{"models": []}')
not_loaded = status(500, NOT_LOADED_BODY)
empty_list = status(200, b'{"data": []}')


# --- server -----------------------------------------------------------------------------------

@dataclass
class RecordedRequest:
    method: str
    path: str  # with the query string
    headers: HTTPMessage  # case-insensitive: headers["Authorization"], headers.get(...)


class _Handler(BaseHTTPRequestHandler):
    server_version = "uvicorn"
    fake: FakeLiteLLM

    def do_GET(self) -> None:  # noqa: N802
        self.fake = self.server.fake  # type: ignore[attr-defined]
        self.fake._record(RecordedRequest("GET", self.path, self.headers))
        self.fake._next_behaviour(self.path.split("?", 1)[0])(self)

    def send_head(self, code: int, length: int, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def send_body(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_head(code, len(body), content_type)
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class FakeLiteLLM:
    """The fake proxy. Attributes a test may set at any time: ``entries``, ``body``, ``key``,
    ``default`` (behaviour once the script is empty; None = ``normal``)."""

    def __init__(self, entries: list[Any] | None = None, *, key: str | None = "sk-fake-master",
                 body: bytes | None = None, port: int = 0):
        self.entries: list[Any] = list(entries or [])
        self.body = body
        self.key = key
        self.default: Behaviour | None = None
        self.requests: list[RecordedRequest] = []
        self._script: deque[tuple[str | None, Behaviour]] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> FakeLiteLLM:
        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _Handler)
        server.daemon_threads = True
        server.block_on_close = False
        server.fake = self  # type: ignore[attr-defined]
        self._server, self._port = server, server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=f"fake-litellm-{self._port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; the port refuses connections afterwards. start() serves it again."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeLiteLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # scripting and inspection
    def script(self, *behaviours: Behaviour, path: str | None = "/model/info") -> None:
        """Queue behaviours for the next requests to ``path`` (``/v1/...`` too; None = any)."""
        with self._lock:
            self._script.extend((path, b) for b in behaviours)

    def count(self, path: str | None = None) -> int:
        """Requests received (to ``path`` or its ``/v1`` twin, query ignored; None = all)."""
        with self._lock:
            return sum(1 for r in self.requests if path is None or _same(r.path, path))

    @property
    def request_count(self) -> int:
        return self.count()

    def reset(self) -> None:
        """Forget recorded requests and queued behaviours."""
        with self._lock:
            self.requests.clear()
            self._script.clear()

    def catalogue_body(self) -> bytes:
        return self.body if self.body is not None else json.dumps({"data": self.entries}).encode()

    # internals
    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_behaviour(self, path: str) -> Behaviour:
        with self._lock:
            for i, (wanted, behaviour) in enumerate(self._script):
                if wanted is None or _same(path, wanted):
                    del self._script[i]
                    return behaviour
        return self.default or normal

    def _auth_error(self, headers: HTTPMessage) -> bytes | None:
        bearer, xkey = headers.get("Authorization"), headers.get("x-litellm-api-key")
        if self.key is None:
            return None
        if bearer is None and xkey is None:
            return _error("Authentication Error, No api key passed in.", "auth_error", 401)
        if bearer is not None and not bearer.startswith("Bearer "):
            return _error(f"Authentication Error, Malformed API Key passed in. Ensure Key has "
                          f"`Bearer ` prefix. Passed in: {bearer}", "auth_error", 401)
        keys = [k for k in (bearer and bearer[len("Bearer "):], xkey) if k is not None]
        if any(k != self.key for k in keys):
            return _error("No connected db.", "no_db_connection", 400)
        return None

    def _answer(self, h: _Handler) -> None:
        path = h.path.split("?", 1)[0]
        if path == "/health/liveliness":
            return h.send_body(200, b'"I\'m alive!"')
        if path == "/health/readiness":
            return h.send_body(200, b'{"status":"healthy","db":"Not connected",'
                                    b'"cache":null,"litellm_version":"1.108.7"}')
        if path not in MODEL_INFO_PATHS:
            return h.send_body(404, b'{"detail":"Not Found"}')
        error = self._auth_error(h.headers)
        if error is not None:
            return h.send_body(400 if b"no_db_connection" in error else 401, error)
        h.send_body(200, self.catalogue_body())


def _same(actual: str, wanted: str) -> bool:
    actual = actual.split("?", 1)[0]
    return actual == wanted or actual == "/v1" + wanted or "/v1" + actual == wanted
