"""Databases for the tests: a real PostgreSQL (a fresh database per test) and SQLite files.

PostgreSQL databases are cloned from a migrated template made once per session, so each test
gets its own state in ~50 ms and no two tests share rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from sync_core import migrate
from sync_core.db import create_db_engine
from tests import pg_server
from tests.factories import StaticSource

# Tests never talk to a real LiteLLM unless they start one, and never read the developer's
# configuration.
for _name in (
    "LITELLM_API_URL",
    "LITELLM_BASE_URL",
    "LITELLM_API_KEY",
    "DATABASE_URL",
    "NODE_ENV",
    "SYNC_API_TOKEN",
    "LITELLM_AUTO_SYNC",
):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    try:
        return pg_server.server_url()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def pg_template(pg_server_url: str) -> Iterator[str]:
    name = pg_server.create_database(pg_server_url, prefix="lms_template")
    engine = create_db_engine(pg_server.with_database(pg_server_url, name))
    migrate.upgrade(engine)
    engine.dispose()
    yield name
    pg_server.drop_database(pg_server_url, name)


@pytest.fixture
def empty_pg_url(pg_server_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (not migrated)."""
    name = pg_server.create_database(pg_server_url)
    yield pg_server.with_database(pg_server_url, name)
    pg_server.drop_database(pg_server_url, name)


@pytest.fixture
def pg_url(pg_server_url: str, pg_template: str) -> Iterator[str]:
    """A new, migrated PostgreSQL database."""
    name = pg_server.create_database(pg_server_url, template=pg_template)
    yield pg_server.with_database(pg_server_url, name)
    pg_server.drop_database(pg_server_url, name)


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A new, migrated SQLite file database."""
    url = f"sqlite:///{tmp_path / 'models.sqlite3'}"
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request) -> str:  # type: ignore[no-untyped-def]
    """A migrated database of each kind: store and sync tests run on both."""
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "sqlite_url")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_db_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def source() -> StaticSource:
    return StaticSource()
