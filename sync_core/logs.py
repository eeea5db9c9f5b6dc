"""Logging set-up: one line per event, text or JSON (``LOG_FORMAT``), level from ``LOG_LEVEL``.

A redacting formatter replaces the configured secrets wherever they would appear in a line
(message, traceback, JSON fields), as a last line of defence: the code never logs them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


class RedactingFormatter(logging.Formatter):
    """Wraps a formatter and replaces every configured secret in its whole output: message,
    traceback and JSON fields alike."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]):
        super().__init__()
        self._inner = inner
        self._secrets = sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        text = self._inner.format(record)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def configure_logging(
    level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = (), stream=None
) -> None:  # type: ignore[no-untyped-def]
    """Replace the root handlers with one that writes single-line events to stderr."""
    handler = logging.StreamHandler(stream or sys.stderr)
    inner = (JsonFormatter() if fmt == "json"
             else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setFormatter(RedactingFormatter(inner, secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("urllib3").setLevel(max(logging.WARNING, root.level))
