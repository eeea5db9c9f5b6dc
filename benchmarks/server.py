"""Loopback servers for the benchmarks: a fast LiteLLM-shaped catalogue server and a
round-trip-counting TCP proxy.

``CatalogueServer`` serves pre-encoded bodies: ``GET /<name>/model/info`` answers the body
registered under ``<name>`` (so one server serves the first-sync and the changed catalogues at
different base URLs). It runs in the benchmark driver's process, never in the measured one.

``RoundTripProxy`` forwards TCP to PostgreSQL and counts round trips: a round trip is a turn of
the conversation from client→server to server→client; it can also delay each turn, to run a
sync as if across a network. It measures protocol round trips whatever
the driver does (BEGIN, COPY, pre-ping, prepared statements), which SQL-statement events cannot.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        name, _, rest = path.lstrip("/").partition("/")
        body = self.server.bodies.get(name)  # type: ignore[attr-defined]
        if body is None or "/" + rest not in (
            "/model/info",
            "/v1/model/info",
            "/health/liveliness",
        ):
            body, code = b'{"detail":"Not Found"}', 404
        else:
            code = 200
            if rest == "health/liveliness":
                body = b'"I\'m alive!"'
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class CatalogueServer:
    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.bodies = self.bodies  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> CatalogueServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def base_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{name}"


class RoundTripProxy:
    """TCP proxy 127.0.0.1:<port> → target; ``round_trips`` counts server answers to requests.

    With ``rtt_s``, each turn of the conversation waits half of it before it is forwarded, in
    each direction: a network whose round trip takes ``rtt_s`` (latency only, no bandwidth
    limit: the bytes of a turn after its first chunk pass at once)."""

    def __init__(self, target_host: str, target_port: int, rtt_s: float = 0.0) -> None:
        self.target = (target_host, target_port)
        self.half_rtt = rtt_s / 2
        self.round_trips = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> int:
        with self._lock:
            count, self.round_trips = self.round_trips, 0
        return count

    def close(self) -> None:
        self._stop = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            state = {"last": "s2c"}  # the server speaks last before the client's first message
            threading.Thread(
                target=self._pump, args=(client, server, "c2s", state), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server, client, "s2c", state), daemon=True
            ).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, direction: str, state: dict[str, str]
    ) -> None:
        try:
            while True:
                data = source.recv(1 << 20)
                if not data:
                    break
                with self._lock:
                    turned = state["last"] != direction
                    if turned:
                        state["last"] = direction
                        if direction == "s2c":
                            self.round_trips += 1
                if turned and self.half_rtt:
                    time.sleep(self.half_rtt)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
