"""Webhook notifications after each sync, signed, retried, and never in the sync's way.

A finished sync only puts a summary on a queue; one background thread delivers it to every
configured URL with ``X-LiteMaaS-Signature: sha256=<HMAC-SHA256 of the body>`` (when a secret
is set), retrying with exponential backoff (tenacity). A slow or dead receiver therefore never
delays or fails a sync; undelivered notifications are logged and counted.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from .config import Secret

log = logging.getLogger("sync_core.notify")
SIGNATURE_HEADER = "X-LiteMaaS-Signature"
EVENT_HEADER = "X-LiteMaaS-Event"


class DeliveryError(Exception):
    """A receiver did not accept a notification (network error or non-2xx)."""


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, signature: str) -> bool:
    """What a receiver does: constant-time comparison of the signature header."""
    return hmac.compare_digest(sign(body, secret), signature)


def summary_of(result: Any) -> dict[str, Any]:
    """The notification body: the LiteMaaS result keys, without per-model detail or secrets."""
    data = result.to_dict()
    keep = ("success", "totalModels", "newModels", "updatedModels", "unavailableModels",
            "restoredModels", "skippedModels", "errorKind", "errorMessage", "syncedAt",
            "durationMs", "trigger", "actor", "fingerprint", "auditId")
    body = {k: data.get(k) for k in keep}
    body["errorCount"] = len(data.get("errors") or [])
    body["event"] = "sync.completed" if result.success else "sync.failed"
    return body


@dataclass
class Notifier:
    urls: Sequence[str]
    secret: Secret | None = None
    attempts: int = 5
    backoff_initial: float = 1.0
    timeout: float = 10.0
    session: requests.Session = field(default_factory=requests.Session)
    sleep: Callable[[float], None] | None = None
    delivered: int = 0
    failed: int = 0

    def __post_init__(self) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=1000)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __call__(self, result: Any) -> None:
        """The sync listener: enqueue and return at once."""
        if not self.urls:
            return
        body = orjson.dumps(summary_of(result), default=str)
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            self.failed += 1
            log.warning("notification queue full; dropped one notification")
            return
        self._ensure_worker()

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="litemaas-sync-notify",
                                                daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            body = self._queue.get()
            try:
                if body is None:
                    return
                for url in self.urls:
                    self._deliver(url, body)
            finally:
                self._queue.task_done()

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            response = self.session.post(url, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise DeliveryError(f"{type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"HTTP {response.status_code}")

    def _deliver(self, url: str, body: bytes) -> None:
        event = orjson.loads(body)["event"]
        headers = {"Content-Type": "application/json", EVENT_HEADER: event,
                   "User-Agent": "litemaas-model-sync"}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(body, self.secret.reveal())
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_initial, min=self.backoff_initial, max=60),
            retry=retry_if_exception_type(DeliveryError),
            sleep=self.sleep if self.sleep is not None else time.sleep,
        )
        try:
            retrying(self._post, url, body, headers)
            self.delivered += 1
        except RetryError as exc:
            self.failed += 1
            host = urlsplit(url).hostname  # webhook URLs often embed a token: log the host only
            log.warning("webhook to %s not delivered after %d attempts: %s", host, self.attempts,
                        exc.last_attempt.exception())

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued notification was handled (tests, shutdown)."""
        done = threading.Event()
        threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True).start()
        return done.wait(timeout)
