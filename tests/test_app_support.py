"""Shared helpers for the dashboard and API tests: a stub LiteLLM, a real server, clean state.

Kept in a test module of its own (with a test of the stub) so the page, API and browser tests
share one way to start things, and the shared ``tests/conftest.py`` stays the engine's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import streamlit as st

from sync_core import api
from tests.factories import entry

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
APP_ENV = (
    "DATABASE_URL",
    "LITELLM_API_URL",
    "LITELLM_BASE_URL",
    "LITELLM_API_KEY",
    "NODE_ENV",
    "SYNC_API_TOKEN",
    "LITELLM_AUTO_SYNC",
    "ADMIN_EMAILS",
    "ADMIN_GROUPS",
)


class StubLiteLLM:
    """A LiteLLM stand-in on loopback: ``/model/info`` serves ``entries``, liveness answers ok."""

    def __init__(self, entries: list[dict[str, Any]] | None = None):
        self.entries = entries if entries is not None else []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path.startswith("/model/info"):
                    body = json.dumps({"data": stub.entries}).encode()
                elif self.path.startswith("/health/liveliness"):
                    body = b'"I\'m alive!"'
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_litellm() -> Iterator[StubLiteLLM]:
    stub = StubLiteLLM()
    yield stub
    stub.close()


def reset_app_state() -> None:
    """No runtime, engine or cached resource survives from one test to the next."""
    st.cache_resource.clear()
    api.reset_runtimes()


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Call with the environment the app should see; the process runtime is rebuilt for it."""
    for name in APP_ENV:
        monkeypatch.delenv(name, raising=False)

    def configure(**env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        reset_app_state()

    reset_app_state()
    yield configure
    reset_app_state()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def streamlit_server(env: dict[str, str], *, timeout: float = 60.0) -> Iterator[str]:
    """``streamlit run app.py`` on a free loopback port; yields its base URL, stops it after."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if k not in APP_ENV}
    log_path = Path(env.get("_LOG", os.devnull))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                APP,
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
                "--server.fileWatcherType",
                "none",
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=ROOT,
            env={**clean, **{k: v for k, v in env.items() if k != "_LOG"}},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}; log: {log_path}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(base + "/_stcore/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not become healthy in {timeout} s")
            time.sleep(0.25)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_stub_litellm_serves_its_catalogue(stub_litellm: StubLiteLLM) -> None:
    stub_litellm.entries = [entry("m1")]
    data = requests.get(stub_litellm.url + "/model/info", timeout=5).json()["data"]
    assert [e["model_name"] for e in data] == ["m1"]
    assert requests.get(stub_litellm.url + "/health/liveliness", timeout=5).status_code == 200
