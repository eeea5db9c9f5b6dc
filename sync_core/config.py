"""Settings from the environment: one typed, validated object.

The variable names are a compatibility contract with LiteMaaS. Each setting carries its default
and help text beside it (``SETTINGS``), so the CLI help, the README table and the docs test read
from one place. Bad values fail fast with a message naming the variable and the accepted form.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .config_values import (  # noqa: F401  (Secret, FreezeWindow, parse_duration re-exported)
    FreezeWindow,
    Secret,
    _bool,
    _choice,
    _cron,
    _database_url,
    _freeze_windows,
    _http_url,
    _int_range,
    _log_level,
    _lower_set,
    _patterns,
    _plan_ttl,
    _secret,
    _share,
    _url_list,
    parse_duration,
)
from .errors import ConfigError

DEFAULT_SQLITE_PATH = "var/litemaas-sync.sqlite3"
CONFLICT_MODES = ("litellm_wins", "database_wins", "merge")
NODE_ENVS = ("development", "production", "test")


@dataclass(frozen=True)
class SettingSpec:
    """One environment variable: its name, parser, default and the help shown in the docs."""

    env: str
    attr: str
    parse: Callable[[str, str], Any]
    default: Any
    help: str
    default_text: str = ""


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "LITELLM_API_URL",
        "litellm_url",
        _http_url,
        None,
        "LiteLLM base URL (for example http://litellm:4000).",
        "—",
    ),
    SettingSpec(
        "LITELLM_BASE_URL",
        "litellm_url",
        _http_url,
        None,
        "Fallback for LITELLM_API_URL when that is unset.",
        "—",
    ),
    SettingSpec(
        "LITELLM_API_KEY",
        "litellm_api_key",
        _secret,
        None,
        "LiteLLM key, sent as `Authorization: Bearer …` and `x-litellm-api-key`.",
        "none",
    ),
    SettingSpec(
        "LITELLM_TIMEOUT",
        "litellm_timeout_seconds",
        lambda raw, name: parse_duration(raw, name, maximum=600),
        30,
        "Total time allowed for one request to LiteLLM (3 attempts on connection errors, "
        "timeouts and 5xx).",
        "`30s`",
    ),
    SettingSpec(
        "DATABASE_URL",
        "database_url",
        _database_url,
        None,
        "`postgresql://user:pass@host:5432/db` (production) or `sqlite:///path.db`.",
        f"embedded SQLite file `{DEFAULT_SQLITE_PATH}`",
    ),
    SettingSpec(
        "LITELLM_AUTO_SYNC",
        "auto_sync",
        _bool,
        False,
        "Run scheduled syncs (the start-up sync runs regardless).",
        "`false`",
    ),
    SettingSpec(
        "LITELLM_SYNC_INTERVAL",
        "sync_interval_seconds",
        parse_duration,
        60,
        "Seconds between scheduled syncs; also accepts `30s`, `5m`, `1h`.",
        "`60`",
    ),
    SettingSpec(
        "LITELLM_SYNC_CRON",
        "sync_cron",
        _cron,
        None,
        "Cron expression for scheduled syncs (instead of the interval), e.g. `*/15 * * * *` (UTC).",
        "none",
    ),
    SettingSpec(
        "LITELLM_SYNC_FREEZE",
        "sync_freeze_windows",
        _freeze_windows,
        (),
        "Freeze windows `CRON|DURATION;…` during which scheduled syncs are skipped and recorded "
        "as skipped, e.g. `0 22 * * 5|60h`.",
        "none",
    ),
    SettingSpec(
        "LITELLM_CONFLICT_RESOLUTION",
        "conflict_resolution",
        _choice(CONFLICT_MODES),
        "litellm_wins",
        "`litellm_wins`, `database_wins` or `merge`.",
        "`litellm_wins`",
    ),
    SettingSpec(
        "LITELLM_SYNC_PROVIDERS",
        "sync_providers",
        _lower_set,
        frozenset(),
        "Selective sync: only these providers (comma-separated); others are left as they are.",
        "all",
    ),
    SettingSpec(
        "LITELLM_SYNC_MODEL_PATTERNS",
        "sync_model_patterns",
        _patterns,
        (),
        "Selective sync: only model names matching one of these regexes (comma-separated).",
        "all",
    ),
    SettingSpec(
        "LITELLM_UNAVAILABLE_RETENTION_DAYS",
        "retention_days",
        _int_range(1, 36500),
        None,
        "Delete models unavailable for longer than this many days (a planned action in the "
        "diff; history stays in the audit log). Unset keeps them forever.",
        "unset (keep)",
    ),
    SettingSpec(
        "LITELLM_MAX_UNAVAILABLE_SHARE",
        "max_unavailable_share",
        _share,
        0.5,
        "Above this share of available models marked unavailable at once, scheduled syncs "
        "refuse and a manual sync must confirm the number.",
        "`0.5`",
    ),
    SettingSpec(
        "LITELLM_PLAN_TTL",
        "plan_ttl_seconds",
        _plan_ttl,
        900,
        "A reviewed plan expires after this long (`15m`); applying it later asks for a new review.",
        "`15m`",
    ),
    SettingSpec(
        "DB_MAX_CONNECTIONS",
        "db_max_connections",
        _int_range(2, 1000),
        10,
        "Database connection pool size per process (at least 2: a sync holds its lock on one "
        "connection and writes on another).",
        "`10`",
    ),
    SettingSpec(
        "DB_IDLE_TIMEOUT",
        "db_idle_timeout_ms",
        _int_range(0),
        30000,
        "Milliseconds before an idle pooled connection is recycled.",
        "`30000`",
    ),
    SettingSpec(
        "DB_CONNECTION_TIMEOUT",
        "db_connection_timeout_ms",
        _int_range(1),
        2000,
        "Milliseconds to wait when connecting to the database.",
        "`2000`",
    ),
    SettingSpec(
        "NODE_ENV",
        "node_env",
        _choice(NODE_ENVS),
        None,
        "`development` (or unset) enables mock mode when no LiteLLM URL is set; "
        "`production` requires one.",
        "unset (development)",
    ),
    SettingSpec(
        "SYNC_API_TOKEN",
        "sync_api_token",
        _secret,
        None,
        "Bearer token for `POST /api/v1/models/sync`; the API refuses syncs without it.",
        "none",
    ),
    SettingSpec(
        "LOG_FORMAT",
        "log_format",
        _choice(("text", "json")),
        "text",
        "`text` or `json` (one JSON object per line).",
        "`text`",
    ),
    SettingSpec(
        "ADMIN_EMAILS",
        "admin_emails",
        _lower_set,
        frozenset(),
        "Comma-separated e-mails that are admins when an OIDC login (`[auth]`) is configured.",
        "none",
    ),
    SettingSpec(
        "ADMIN_GROUPS",
        "admin_groups",
        _lower_set,
        frozenset(),
        "Comma-separated group claims whose members are admins (with `[auth]`).",
        "none",
    ),
    SettingSpec(
        "NOTIFY_WEBHOOK_URLS",
        "notify_webhook_urls",
        _url_list,
        (),
        "Comma-separated URLs that receive a JSON summary after each sync (success or failure).",
        "none",
    ),
    SettingSpec(
        "NOTIFY_WEBHOOK_SECRET",
        "notify_webhook_secret",
        _secret,
        None,
        "Key of the `X-LiteMaaS-Signature: sha256=…` HMAC-SHA256 over each webhook body.",
        "none (unsigned)",
    ),
    SettingSpec(
        "LOG_LEVEL",
        "log_level",
        _log_level,
        "INFO",
        "`debug`, `info`, `warning` or `error`.",
        "`info`",
    ),
)


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Build it with :meth:`from_env`; never holds a secret in repr."""

    litellm_url: str | None = None
    litellm_api_key: Secret | None = None
    litellm_timeout_seconds: int = 30
    database_url: str = field(default=f"sqlite:///{DEFAULT_SQLITE_PATH}", repr=False)
    auto_sync: bool = False
    sync_interval_seconds: int = 60
    sync_cron: str | None = None
    sync_freeze_windows: tuple[FreezeWindow, ...] = ()
    conflict_resolution: str = "litellm_wins"
    sync_providers: frozenset[str] = frozenset()
    sync_model_patterns: tuple[str, ...] = ()
    retention_days: int | None = None
    max_unavailable_share: float = 0.5
    plan_ttl_seconds: int = 900
    db_max_connections: int = 10
    db_idle_timeout_ms: int = 30000
    db_connection_timeout_ms: int = 2000
    node_env: str | None = None
    sync_api_token: Secret | None = None
    notify_webhook_urls: tuple[str, ...] = field(default=(), repr=False)  # may embed tokens
    notify_webhook_secret: Secret | None = None
    admin_emails: frozenset[str] = frozenset()
    admin_groups: frozenset[str] = frozenset()
    log_level: str = "INFO"
    log_format: str = "text"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in SETTINGS:
            raw = env.get(spec.env)
            if raw is None or raw.strip() == "":
                continue
            if spec.attr in values:  # LITELLM_BASE_URL is only a fallback
                continue
            values[spec.attr] = spec.parse(raw, spec.env)
        settings = cls(**values)
        if settings.litellm_url is None and settings.is_production:
            raise ConfigError(
                "LITELLM_API_URL is required when NODE_ENV=production "
                "(mock mode is for development only); set it to http(s)://host:port"
            )
        return settings

    def secret_values(self) -> list[str]:
        """The configured secrets, for the log redaction filter."""
        from sqlalchemy.engine import make_url

        values = [s.reveal() for s in (self.litellm_api_key, self.sync_api_token,
                                        self.notify_webhook_secret) if s]
        password = make_url(self.database_url).password
        return values + list(self.notify_webhook_urls) + ([str(password)] if password else [])

    @property
    def is_production(self) -> bool:
        return self.node_env == "production"

    @property
    def is_development(self) -> bool:
        return self.node_env in (None, "development", "test")

    @property
    def mock_mode(self) -> bool:
        """Serve the bundled catalogue: only when no URL is set, never in production."""
        return self.litellm_url is None and self.is_development

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_demo(self) -> bool:
        """Nothing configured: embedded SQLite and the mock catalogue."""
        return self.mock_mode and self.is_sqlite

    def display_database_url(self) -> str:
        """The database URL with its password hidden, for pages and logs."""
        from sqlalchemy.engine import make_url

        return make_url(self.database_url).render_as_string(hide_password=True)


def settings_markdown_table() -> str:
    """The README's configuration table, generated from ``SETTINGS`` (tests keep them equal)."""
    lines = ["| variable | meaning | default |", "|---|---|---|"]
    lines += [f"| `{s.env}` | {s.help} | {s.default_text} |" for s in SETTINGS]
    return "\n".join(lines)
