"""Typed values parsed from the environment, and their parsers.

Each parser takes the raw string and the variable's name and raises :class:`ConfigError` with
a message that names the variable and the accepted form. ``config`` wires them to the settings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from .errors import ConfigError


class Secret:
    """A string that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class FreezeWindow:
    """Scheduled syncs are skipped for ``duration`` after each time ``cron`` fires."""

    cron: str
    duration: timedelta

    def frozen_until(self, now: datetime) -> datetime | None:
        from croniter import croniter  # (only with a cron schedule: 5 ms of start-up)

        start = croniter(self.cron, now).get_prev(datetime)
        end = start + self.duration
        return end if start <= now < end else None


# --- parsers: each takes the raw string and the variable name, and raises ConfigError ---------


def _bool(raw: str, name: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean; use true or false")


def _int_range(low: int, high: int | None = None) -> Callable[[str, str], int]:
    def parse(raw: str, name: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not an integer; use a whole number") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ConfigError(f"{name}={raw!r} is out of range; use a whole number {bounds}")
        return value

    return parse


_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$", re.IGNORECASE)
MAX_DURATION_SECONDS = 7 * 86400
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(raw: str, name: str, maximum: int | None = None) -> int:
    """Seconds from ``90``, ``90s``, ``5m``, ``1h`` or ``1d``; at least one second."""
    match = _DURATION.match(raw)
    if not match:
        raise ConfigError(
            f"{name}={raw!r} is not a duration; use seconds (60) or a number with s, m, h or d (5m)"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
    if seconds < 1:
        raise ConfigError(f"{name}={raw!r} must be at least 1 second")
    if seconds > (maximum or MAX_DURATION_SECONDS):
        limit = maximum or MAX_DURATION_SECONDS
        shown = f"{limit // 86400}d" if limit % 86400 == 0 else f"{limit}s"
        raise ConfigError(f"{name}={raw!r} is too long; use at most {shown}")
    return seconds


def _choice(options: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(raw: str, name: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ConfigError(f"{name}={raw!r} is not accepted; use one of: {', '.join(options)}")
        return value

    return parse


def _http_url(raw: str, name: str) -> str:
    value = raw.strip().rstrip("/")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a non-numeric or out-of-range port
    except ValueError:
        raise ConfigError(f"{name} is not a valid URL; use http(s)://host[:port][/path]") from None
    if parts.username or parts.password:
        raise ConfigError(f"{name} must not carry credentials in the URL; use LITELLM_API_KEY")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}={raw!r} is not an HTTP URL; use http(s)://host[:port][/path]")
    return value


def _database_url(raw: str, name: str) -> str:
    value = raw.strip()
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        return "postgresql+psycopg://" + value.split("://", 1)[1]
    if scheme in ("sqlite", "sqlite+pysqlite"):
        return value
    raise ConfigError(
        f"{name} has an unsupported scheme {scheme or '(none)'!r}; "
        "use postgresql://user:password@host:5432/dbname or sqlite:///path/to/file.db"
    )


def _secret(raw: str, name: str) -> Secret:
    return Secret(raw.strip())


def _url_list(raw: str, name: str) -> tuple[str, ...]:
    return tuple(_http_url(part, name) for part in raw.split(",") if part.strip())


def _cron(raw: str, name: str) -> str:
    value = " ".join(raw.split())
    from croniter import croniter  # (see above)

    if not croniter.is_valid(value):
        raise ConfigError(f"{name}={raw!r} is not a cron expression; use five fields, "
                          "e.g. '*/15 * * * *'")
    return value


def _freeze_windows(raw: str, name: str) -> tuple[FreezeWindow, ...]:
    windows = []
    for part in raw.split(";"):
        if not part.strip():
            continue
        cron, sep, duration = part.rpartition("|")
        if not sep:
            raise ConfigError(f"{name}={raw!r}: each window is CRON|DURATION, e.g. "
                              "'0 22 * * 5|60h' (Friday 22:00 for 60 hours); separate with ;")
        windows.append(FreezeWindow(_cron(cron, name), timedelta(
            seconds=parse_duration(duration, name, maximum=366 * 86400))))
    return tuple(windows)


def _patterns(raw: str, name: str) -> tuple[str, ...]:
    patterns = tuple(p.strip() for p in raw.split(",") if p.strip())
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{name}: {pattern!r} is not a regular expression ({exc}); use "
                              "comma-separated Python regexes, e.g. '^gpt-,claude'") from None
    return patterns


def _share(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; use a share between 0 and 1, "
                          "e.g. 0.5") from None
    if not 0 < value <= 1:
        raise ConfigError(f"{name}={raw!r} is out of range; use a share between 0 and 1")
    return value


def _plan_ttl(raw: str, name: str) -> int:
    return parse_duration(raw, name, maximum=86400)


def _lower_set(raw: str, name: str) -> frozenset[str]:
    return frozenset(part.strip().lower() for part in raw.split(",") if part.strip())


def _log_level(raw: str, name: str) -> str:
    return _choice(("debug", "info", "warning", "error"))(raw, name).upper()
