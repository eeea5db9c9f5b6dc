"""Settings from the environment: defaults, good values, bad values, fallbacks and secrets."""

from __future__ import annotations

import pytest

from sync_core.config import (
    DEFAULT_SQLITE_PATH,
    SETTINGS,
    ConfigError,
    Secret,
    Settings,
    parse_duration,
)

URL = "http://litellm:4000"

# env: (default attribute value, good raw value, its parsed value, bad raw value or None,
#       a fragment of the accepted form the error must show)
CASES = {
    "LITELLM_API_URL": (None, " http://litellm:4000/ ", URL, "litellm:4000", "http(s)://host"),
    "LITELLM_BASE_URL": (None, "https://llm.example.com/proxy/", "https://llm.example.com/proxy",
                         "ftp://litellm", "http(s)://host"),
    "LITELLM_API_KEY": (None, " sk-abc ", Secret("sk-abc"), None, ""),
    "LITELLM_TIMEOUT": (30, "5", 5, "11m", "at most 600s"),
    "DATABASE_URL": (f"sqlite:///{DEFAULT_SQLITE_PATH}", "postgres://u:p@db:5432/lm",
                     "postgresql+psycopg://u:p@db:5432/lm", "mysql://u:p@db/lm",
                     "postgresql://user:password@host:5432/dbname"),
    "LITELLM_AUTO_SYNC": (False, "TRUE", True, "maybe", "true or false"),
    "LITELLM_SYNC_INTERVAL": (60, "5m", 300, "5 minutes", "a number with s, m, h or d"),
    "LITELLM_SYNC_CRON": (None, " */5  * * * * ", "*/5 * * * *", "hourly", "five fields"),
    "LITELLM_SYNC_FREEZE": ((), "", (), "0 22 * * 5", "CRON|DURATION"),
    "LITELLM_CONFLICT_RESOLUTION": ("litellm_wins", "Merge", "merge", "newest",
                                    "litellm_wins, database_wins, merge"),
    "LITELLM_SYNC_PROVIDERS": (frozenset(), "OpenAI, azure", frozenset({"openai", "azure"}), None, ""),
    "LITELLM_SYNC_MODEL_PATTERNS": ((), "^gpt-, claude", ("^gpt-", "claude"), "([", "regular expression"),
    "LITELLM_UNAVAILABLE_RETENTION_DAYS": (None, "30", 30, "0", "between 1 and 36500"),
    "LITELLM_MAX_UNAVAILABLE_SHARE": (0.5, "0.25", 0.25, "2", "between 0 and 1"),
    "LITELLM_PLAN_TTL": (900, "15m", 900, "forever", "a number with s, m, h or d"),
    "DB_MAX_CONNECTIONS": (10, "25", 25, "ten", "whole number"),
    "DB_IDLE_TIMEOUT": (30000, "0", 0, "-1", "at least 0"),
    "DB_CONNECTION_TIMEOUT": (2000, "5000", 5000, "2s", "whole number"),
    "NODE_ENV": (None, "Development", "development", "staging", "development, production, test"),
    "SYNC_API_TOKEN": (None, "tok", Secret("tok"), None, ""),
    "LOG_LEVEL": ("INFO", "debug", "DEBUG", "verbose", "debug, info, warning, error"),
    "LOG_FORMAT": ("text", "JSON", "json", "yaml", "text, json"),
    "NOTIFY_WEBHOOK_URLS": ((), "http://a/x, https://b/y", ("http://a/x", "https://b/y"),
                            "ftp://a", "http(s)://host"),
    "NOTIFY_WEBHOOK_SECRET": (None, "s3", Secret("s3"), None, ""),
    "ADMIN_EMAILS": (frozenset(), " A@x.org, b@y.org ", frozenset({"a@x.org", "b@y.org"}), None, ""),
    "ADMIN_GROUPS": (frozenset(), "ops,Platform", frozenset({"ops", "platform"}), None, ""),
}
SPECS = {spec.env: spec for spec in SETTINGS}


def test_every_setting_is_covered():
    assert set(CASES) == set(SPECS)


@pytest.mark.parametrize("env", list(CASES))
def test_default(env):
    default = CASES[env][0]
    assert getattr(Settings.from_env({}), SPECS[env].attr) == default
    assert getattr(Settings.from_env({env: "   "}), SPECS[env].attr) == default  # blank = unset
    if env != "DATABASE_URL":  # the spec's None means "the embedded SQLite file"
        assert SPECS[env].default == default
    assert SPECS[env].help and SPECS[env].default_text


@pytest.mark.parametrize("env", list(CASES))
def test_good_value(env):
    _, raw, parsed, _, _ = CASES[env]
    assert getattr(Settings.from_env({env: raw}), SPECS[env].attr) == parsed


@pytest.mark.parametrize("env", [env for env, case in CASES.items() if case[3] is not None])
def test_bad_value_names_the_variable_and_the_accepted_form(env):
    _, _, _, bad, form = CASES[env]
    with pytest.raises(ConfigError) as info:
        Settings.from_env({env: bad})
    assert env in str(info.value) and form in str(info.value)
    assert info.value.kind == "configuration"


@pytest.mark.parametrize(("env", "raw", "fragment"), [
    ("DB_MAX_CONNECTIONS", "1", "between 2 and 1000"),
    ("DB_MAX_CONNECTIONS", "1001", "between 2 and 1000"),
    ("DB_CONNECTION_TIMEOUT", "0", "at least 1"),
    ("LITELLM_SYNC_INTERVAL", "0", "at least 1 second"),
    ("LITELLM_SYNC_INTERVAL", "1.5m", "(5m)"),
    ("LITELLM_SYNC_INTERVAL", "-5", "(5m)"),
    ("LITELLM_API_URL", "http://", "http(s)://host"),
    ("LITELLM_API_URL", "http://admin:pw@litellm:4000", "LITELLM_API_KEY"),
    ("DATABASE_URL", "/var/db.sqlite", "sqlite:///path/to/file.db"),
])
def test_more_bad_values(env, raw, fragment):
    with pytest.raises(ConfigError, match=env) as info:
        Settings.from_env({env: raw})
    assert fragment in str(info.value)


@pytest.mark.parametrize(("raw", "seconds"), [
    ("60", 60), ("90s", 90), ("5m", 300), ("1h", 3600), ("2H", 7200), ("1d", 86400), (" 5 m ", 300),
])
def test_intervals(raw, seconds):
    assert Settings.from_env({"LITELLM_SYNC_INTERVAL": raw}).sync_interval_seconds == seconds
    assert parse_duration(raw, "X") == seconds


def test_absurd_interval_is_refused():
    with pytest.raises(ConfigError, match="LITELLM_SYNC_INTERVAL"):
        Settings.from_env({"LITELLM_SYNC_INTERVAL": "1000000d"})


@pytest.mark.parametrize("raw", ["1", "true", "Yes", "on", "0", "false", "NO", "off"])
def test_booleans(raw):
    expected = raw.lower() in ("1", "true", "yes", "on")
    assert Settings.from_env({"LITELLM_AUTO_SYNC": raw}).auto_sync is expected


def test_database_urls():
    assert Settings.from_env({"DATABASE_URL": "sqlite:///x.db"}).database_url == "sqlite:///x.db"
    pg = Settings.from_env({"DATABASE_URL": "postgresql://u:p@h/db"})
    assert pg.database_url == "postgresql+psycopg://u:p@h/db" and not pg.is_sqlite
    assert Settings.from_env({}).is_sqlite


def test_base_url_is_only_a_fallback():
    assert Settings.from_env({"LITELLM_BASE_URL": URL}).litellm_url == URL
    both = Settings.from_env({"LITELLM_API_URL": URL, "LITELLM_BASE_URL": "http://other:1"})
    assert both.litellm_url == URL
    # the fallback is not consulted (nor validated) when the primary is set
    unchecked = Settings.from_env({"LITELLM_API_URL": URL, "LITELLM_BASE_URL": "junk"})
    assert unchecked.litellm_url == URL
    blank = Settings.from_env({"LITELLM_API_URL": " ", "LITELLM_BASE_URL": URL})
    assert blank.litellm_url == URL
    with pytest.raises(ConfigError, match="LITELLM_API_URL"):
        Settings.from_env({"LITELLM_API_URL": "junk", "LITELLM_BASE_URL": URL})


@pytest.mark.parametrize("raw", ["http://[::1", "http://litellm:port", "http://litellm:99999"])
def test_malformed_urls_fail_fast_with_config_error(raw):
    with pytest.raises(ConfigError, match="LITELLM_API_URL"):
        Settings.from_env({"LITELLM_API_URL": raw})


def test_modes():
    assert Settings.from_env({}).mock_mode and Settings.from_env({}).is_demo
    dev = Settings.from_env({"NODE_ENV": "development"})
    assert dev.mock_mode and dev.is_development and not dev.is_production
    live = Settings.from_env({"LITELLM_API_URL": URL})
    assert not live.mock_mode
    prod = Settings.from_env({"NODE_ENV": "production", "LITELLM_BASE_URL": URL})
    assert prod.is_production and not prod.mock_mode and prod.litellm_url == URL


def test_production_without_url_fails():
    with pytest.raises(ConfigError, match="LITELLM_API_URL") as info:
        Settings.from_env({"NODE_ENV": "production"})
    assert "http(s)://" in str(info.value)


def test_from_env_reads_os_environ(monkeypatch):
    monkeypatch.setenv("LITELLM_SYNC_INTERVAL", "1h")
    assert Settings.from_env().sync_interval_seconds == 3600


SECRETS = {
    "LITELLM_API_KEY": "sk-SECRET-api-key-9931",
    "SYNC_API_TOKEN": "SECRET-sync-token-5521",
    "DATABASE_URL": "postgresql://lm:SECRET-db-pass-7781@db.internal:5432/litemaas",
}


def test_secrets_never_show():
    settings = Settings.from_env({**SECRETS, "LITELLM_API_URL": URL})
    for text in (repr(settings), str(settings), settings.display_database_url()):
        for marker in ("sk-SECRET-api-key-9931", "SECRET-sync-token-5521", "SECRET-db-pass-7781"):
            assert marker not in text
    assert "db.internal" in settings.display_database_url()
    assert settings.litellm_api_key.reveal() == "sk-SECRET-api-key-9931"
    assert settings.sync_api_token.reveal() == "SECRET-sync-token-5521"


def test_secret_type():
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret}" and "hunter2" not in repr([secret])
    assert secret == Secret("hunter2") and secret != Secret("other") and secret != "hunter2"
    assert hash(secret) == hash(Secret("hunter2"))
    assert not Secret("") and secret


def test_credentials_in_a_url_never_reach_the_message():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"LITELLM_API_URL": "http://admin:SECRETPW@litellm:4000"})
    assert "SECRETPW" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"DATABASE_URL": "mysql://lm:SECRETPW@db/lm"})
    assert "SECRETPW" not in str(info.value)


def test_credentials_in_a_non_http_url_never_reach_the_message():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"LITELLM_API_URL": "ftp://admin:SECRETPW@litellm"})
    assert "SECRETPW" not in str(info.value)
