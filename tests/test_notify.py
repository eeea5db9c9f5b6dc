"""Webhooks: signed JSON summaries after every sync, retried, never delaying the sync."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sync_core.access import SYSTEM
from sync_core.config import Secret, Settings
from sync_core.errors import LiteLLMServerError
from sync_core.notify import SIGNATURE_HEADER, Notifier, verify
from sync_core.runtime import build_runtime
from tests.factories import StaticSource

SECRET = "whsec-test-4411"


class Receiver:
    """A loopback webhook receiver: fails the first ``fail_first`` posts, can block on a gate."""

    def __init__(self, fail_first: int = 0):
        self.fail_first = fail_first
        self.received: list[tuple[dict, bytes]] = []
        self.attempts = 0
        self.gate = threading.Event()
        self.gate.set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.attempts += 1
                outer.gate.wait(10)
                if outer.attempts <= outer.fail_first:
                    self.send_response(503)
                else:
                    outer.received.append((dict(self.headers), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook?token=tok-in-url"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.gate.set()
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def runtime_for(sqlite_url, url, source=None):
    settings = Settings.from_env({"DATABASE_URL": sqlite_url, "NOTIFY_WEBHOOK_URLS": url,
                                  "NOTIFY_WEBHOOK_SECRET": SECRET})
    return build_runtime(settings, source=source or StaticSource())


def test_a_cli_sync_delivers_its_webhook_before_the_process_exits(db_url, receiver):
    """``litemaas-sync sync`` exits right after its sync (``cli.run``): its notification, sent
    from a background thread, must have been delivered by then."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "DATABASE_URL": db_url, "NOTIFY_WEBHOOK_URLS": receiver.url,
           "NOTIFY_WEBHOOK_SECRET": SECRET}
    env.pop("LITELLM_API_URL", None)
    script = str(Path(sys.executable).parent / "litemaas-sync")
    done = subprocess.run([script, "sync"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    assert verify(body, SECRET, headers[SIGNATURE_HEADER])
    assert json.loads(body)["event"] == "sync.completed"


def test_success_and_failure_are_notified_with_a_valid_signature(sqlite_url, receiver):
    source = StaticSource()
    runtime = runtime_for(sqlite_url, receiver.url, source)
    runtime.service.run(trigger="manual", actor=SYSTEM)
    source.error = LiteLLMServerError("LiteLLM at http://x answered HTTP 503")
    runtime.service.run(trigger="schedule", actor=SYSTEM)
    assert runtime.notifier.drain(10)
    events = []
    for headers, body in receiver.received:
        assert verify(body, SECRET, headers[SIGNATURE_HEADER])
        assert not verify(body, "other-secret", headers[SIGNATURE_HEADER])
        events.append(json.loads(body))
    assert [e["event"] for e in events] == ["sync.completed", "sync.failed"]
    assert events[0]["newModels"] == 8 and events[1]["errorKind"] == "server"
    assert SECRET not in str(receiver.received)
    runtime.close()


def test_failed_deliveries_are_retried_with_backoff():
    receiver = Receiver(fail_first=2)
    sleeps: list[float] = []
    notifier = Notifier([receiver.url], Secret(SECRET), sleep=sleeps.append)

    class Result:
        success = True

        def to_dict(self):
            return {"success": True, "errors": []}

    notifier(Result())
    assert notifier.drain(10)
    receiver.close()
    assert receiver.attempts == 3 and len(receiver.received) == 1
    assert sleeps == [1, 2] and notifier.delivered == 1 and notifier.failed == 0


def test_a_dead_receiver_is_given_up_and_logged_without_the_url_token(caplog):
    sleeps: list[float] = []
    notifier = Notifier(["http://127.0.0.1:9/hook?token=tok-in-url"], attempts=3, sleep=sleeps.append)

    class Result:
        success = False

        def to_dict(self):
            return {"success": False, "errors": []}

    notifier(Result())
    assert notifier.drain(10)
    assert notifier.failed == 1 and len(sleeps) == 2
    assert any("not delivered" in r.getMessage() for r in caplog.records)
    assert "tok-in-url" not in caplog.text


def test_a_slow_receiver_never_delays_the_sync(sqlite_url, receiver):
    receiver.gate.clear()  # the receiver hangs until released
    runtime = runtime_for(sqlite_url, receiver.url)
    result = runtime.service.run(trigger="manual", actor=SYSTEM)
    assert result.success
    assert receiver.received == []  # the sync returned while the webhook was still blocked
    receiver.gate.set()
    assert runtime.notifier.drain(10) and len(receiver.received) == 1
    runtime.close()
