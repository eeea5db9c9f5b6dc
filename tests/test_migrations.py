"""Migrations create the seed schema, are idempotent, and adopt an existing LiteMaaS database."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa

from sync_core import migrate
from sync_core.access import SYSTEM
from sync_core.db import create_db_engine
from sync_core.sync import SyncService
from tests.factories import StaticSource, real_entries

# The seed's DDL plus the columns LiteMaaS added over time, and its audit_logs table.
LITEMAAS_DDL = """
CREATE TABLE users (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), username VARCHAR(255));
CREATE TABLE models (
    id VARCHAR(255) PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    provider VARCHAR(100) NOT NULL,
    description TEXT,
    category VARCHAR(100) DEFAULT 'Language Model',
    context_length INTEGER,
    input_cost_per_token DECIMAL(12, 10),
    output_cost_per_token DECIMAL(12, 10),
    supports_vision BOOLEAN DEFAULT false,
    supports_function_calling BOOLEAN DEFAULT false,
    supports_parallel_function_calling BOOLEAN DEFAULT false,
    supports_tool_choice BOOLEAN DEFAULT false,
    supports_streaming BOOLEAN DEFAULT true,
    features TEXT[],
    availability VARCHAR(20) DEFAULT 'available',
    version VARCHAR(50),
    metadata JSONB DEFAULT '{}',
    created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    litellm_model_id VARCHAR(255),
    backend_model_name VARCHAR(255),
    api_base VARCHAR(500),
    tpm INTEGER,
    rpm INTEGER,
    max_tokens INTEGER,
    restricted_access BOOLEAN DEFAULT false
);
CREATE INDEX idx_models_provider ON models(provider);
CREATE TABLE audit_logs (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID REFERENCES users(id) ON DELETE SET NULL,
    action VARCHAR(100) NOT NULL,
    resource_type VARCHAR(50) NOT NULL,
    resource_id VARCHAR(255),
    old_values JSONB,
    new_values JSONB,
    ip_address INET,
    user_agent TEXT,
    success BOOLEAN DEFAULT true,
    error_message TEXT,
    metadata JSONB DEFAULT '{}',
    created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO models (id, name, provider, availability, litellm_model_id, restricted_access, api_base)
VALUES ('legacy-model', 'legacy-model', 'openai', 'available', 'abc', true, 'http://old'),
       ('gpt-4o', 'gpt-4o', 'openai', 'available', 'def', true, 'http://kept');
INSERT INTO audit_logs (action, resource_type, metadata) VALUES ('USER_LOGIN', 'USER', '{}');
"""


def _columns(engine, table):
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def test_the_quick_version_check_knows_alembics_head():
    assert migrate.head_revision() == migrate.HEAD_REVISION


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_the_quick_version_check_follows_the_schema(kind, request, tmp_path):
    url = (request.getfixturevalue("empty_pg_url") if kind == "postgresql"
           else f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    engine = create_db_engine(url)
    assert not migrate.is_up_to_date(engine)  # no version table yet
    migrate.upgrade(engine, "0003")
    assert not migrate.is_up_to_date(engine)  # behind
    migrate.upgrade(engine)
    assert migrate.is_up_to_date(engine)
    engine.dispose()


def test_fresh_postgres_gets_the_seed_schema(empty_pg_url):
    engine = create_db_engine(empty_pg_url)
    assert migrate.current_revision(engine) is None
    assert migrate.upgrade(engine) == migrate.head_revision()
    assert migrate.is_up_to_date(engine)
    assert {"id", "features", "metadata", "availability", "updated_at"} <= _columns(
        engine, "models"
    )
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("models")}
    assert {"idx_models_provider", "idx_models_availability", "idx_models_updated_at"} <= indexes
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO models (id, name, provider, updated_at) "
                "VALUES ('m', 'm', 'p', '2000-01-01')"
            )
        )
        conn.execute(sa.text("UPDATE models SET provider = 'q' WHERE id = 'm'"))
        year = conn.execute(sa.text("SELECT extract(year FROM updated_at) FROM models")).scalar()
    assert int(year) >= 2026  # the trigger maintains updated_at
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO models (id, name, provider, availability) "
                "VALUES ('x', 'x', 'p', 'maybe')"
            )
        )
    assert migrate.upgrade(engine) == migrate.head_revision()  # idempotent
    engine.dispose()


def test_fresh_sqlite_gets_the_same_tables(tmp_path):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    migrate.upgrade(engine)
    assert {"id", "features", "metadata", "availability"} <= _columns(engine, "models")
    assert {"id", "action", "success", "metadata"} <= _columns(engine, "audit_logs")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO models (id, name, provider, updated_at) "
                "VALUES ('m', 'm', 'p', '2000-01-01 00:00:00')"
            )
        )
        conn.execute(sa.text("UPDATE models SET provider = 'q' WHERE id = 'm'"))
        stamp = conn.execute(sa.text("SELECT updated_at FROM models")).scalar()
    assert not str(stamp).startswith("2000")
    engine.dispose()


def test_existing_litemaas_database_is_adopted_without_loss_then_synced(empty_pg_url):
    with psycopg.connect(empty_pg_url, autocommit=True) as conn:
        conn.execute(LITEMAAS_DDL)
    engine = create_db_engine(empty_pg_url)
    migrate.upgrade(engine)
    columns = _columns(engine, "models")
    assert {
        "litellm_model_id",
        "backend_model_name",
        "api_base",
        "tpm",
        "rpm",
        "max_tokens",
        "restricted_access",
    } <= columns
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("models")}
    assert {"idx_models_availability", "idx_models_updated_at"} <= indexes

    result = SyncService(engine, StaticSource(real_entries())).run(trigger="cli", actor=SYSTEM)
    assert result.success and result.new_models == 7 and result.updated_models == 1
    assert result.unavailable_models == 1
    with engine.connect() as conn:
        legacy = conn.execute(
            sa.text(
                "SELECT availability, litellm_model_id, restricted_access FROM models "
                "WHERE id = 'legacy-model'"
            )
        ).one()
        gpt = conn.execute(
            sa.text(
                "SELECT context_length, api_base, restricted_access FROM models WHERE id = 'gpt-4o'"
            )
        ).one()
        actions = [
            r[0] for r in conn.execute(sa.text("SELECT action FROM audit_logs ORDER BY created_at"))
        ]
    assert tuple(legacy) == ("unavailable", "abc", True)
    assert tuple(gpt) == (128000, "http://kept", True)  # LiteMaaS's own columns untouched
    assert actions == ["USER_LOGIN", "MODELS_SYNC"]
    assert SyncService(engine, StaticSource(real_entries())).preview().has_changes is False
    engine.dispose()


def test_existing_sqlite_tables_get_missing_columns(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = create_db_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE models (id VARCHAR(255) PRIMARY KEY, name VARCHAR(255) "
                "NOT NULL, provider VARCHAR(100) NOT NULL, extra_col TEXT)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO models (id, name, provider, extra_col) "
                "VALUES ('a', 'a', 'p', 'keep me')"
            )
        )
    migrate.upgrade(engine)
    assert {"metadata", "features", "availability", "extra_col"} <= _columns(engine, "models")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT extra_col FROM models")).scalar() == "keep me"
    engine.dispose()


def test_sqlite_rows_get_versions_every_write_moves(tmp_path):
    """0009 stamps the rows a database at 0008 already holds; from then on every insert and
    update of a row gives it a higher version, a delete takes its version away, and a version
    is never given twice (the stamps are the write count). Going back restores 0008's counter."""
    from sync_core.store import row_versions

    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    migrate.upgrade(engine, "0008")

    def write(sql):
        with engine.begin() as conn:
            conn.execute(sa.text(sql))

    def versions():
        with engine.connect() as conn:
            return {k: int(v) for k, v in row_versions(conn).items()}

    def count():
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count FROM model_sync_writes")).scalar_one()

    write("INSERT INTO models (id, name, provider) VALUES ('a', 'a', 'p'), ('b', 'b', 'p')")
    migrate.upgrade(engine)
    seeded = versions()
    assert set(seeded) == {"a", "b"}
    write("INSERT INTO models (id, name, provider) VALUES ('c', 'c', 'p')")
    after_insert = versions()
    assert after_insert["c"] > max(seeded.values()) and after_insert["a"] == seeded["a"]
    write("UPDATE models SET provider = 'q' WHERE id = 'a'")
    after_update = versions()
    assert after_update["a"] > after_insert["c"] and after_update["b"] == seeded["b"]
    write("UPDATE models SET id = 'b2' WHERE id = 'b'")  # (an id changed by hand)
    write("DELETE FROM models WHERE id = 'c'")
    after = versions()
    assert set(after) == {"a", "b2"} and after["b2"] > after_update["a"]
    assert len(set(after.values()) | set(after_update.values())) == 4  # never given twice
    from alembic import command

    config = migrate._config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0008")
    before = count()
    write("UPDATE models SET provider = 'r' WHERE id = 'a'")
    assert count() > before  # 0008's counter counts again
    with engine.connect() as conn:
        assert "model_row_versions" not in sa.inspect(conn).get_table_names()
    migrate.upgrade(engine)
    assert set(versions()) == {"a", "b2"}
    engine.dispose()


def test_sqlite_version_triggers_keep_their_rules_under_a_conflict_clause(tmp_path):
    """SQLite gives a trigger's statements the conflict clause of the statement that fired it:
    a hand-written INSERT OR REPLACE must only count on (not re-make the count), and an INSERT
    OR IGNORE must not keep a stamp left behind for that id."""
    from sync_core.store import row_versions

    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    migrate.upgrade(engine)

    def run(sql):
        with engine.begin() as conn:
            conn.execute(sa.text(sql))

    def count():
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count FROM model_sync_writes")).scalar_one()

    run("INSERT INTO models (id, name, provider) VALUES ('a', 'a', 'p')")
    before = count()
    for _ in range(3):
        run("INSERT OR REPLACE INTO models (id, name, provider) VALUES ('a', 'a', 'q')")
    assert before < count() <= before + 12
    run("INSERT INTO model_row_versions (id, version) VALUES ('z', 12345)")  # (left behind)
    run("INSERT OR IGNORE INTO models (id, name, provider) VALUES ('z', 'z', 'p')")
    with engine.connect() as conn:
        versions = row_versions(conn)
    assert versions["z"] == str(count()) != "12345"
    engine.dispose()


def test_replicas_migrating_a_fresh_database_together_all_succeed(empty_pg_url):
    import subprocess
    import sys

    script = ("import sys; from sync_core.db import create_db_engine; from sync_core import migrate;"
              "print(migrate.upgrade(create_db_engine(sys.argv[1])))")
    procs = [subprocess.Popen([sys.executable, "-c", script, empty_pg_url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outcomes = [(p.wait(timeout=120), p.stdout.read().strip(), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _, _ in outcomes), [err[-400:] for _, _, err in outcomes]
    assert {out for _, out, _ in outcomes} == {migrate.head_revision()}
