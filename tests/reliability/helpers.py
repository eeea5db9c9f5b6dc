"""Shared helpers of the reliability suite: table fingerprints, audit rows, lock state, CLI runs,
large and random catalogues, and an independent oracle of the plan rules."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync_core import audit
from sync_core.db import create_db_engine, is_postgres
from sync_core.locking import LOCK_KEY, current_holder
from sync_core.mapping import ModelRow, map_catalogue
from sync_core.store import read_current_rows

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
FAST_CLI = [PYTHON, "-m", "tests.reliability.fast_cli"]
REAL_CLI = [PYTHON, "-m", "sync_core"]

_FINGERPRINT_COLUMNS = (
    "id, name, provider, description, category, context_length, input_cost_per_token, "
    "output_cost_per_token, supports_vision, supports_function_calling, "
    "supports_parallel_function_calling, supports_tool_choice, supports_streaming, "
    "features, availability, version, metadata"
)


def table_rows(engine: Engine) -> list[tuple[Any, ...]]:
    """Every ``models`` row (timestamps left out), ordered by id, as comparable tuples."""
    cast = "CAST(features AS TEXT), CAST(metadata AS TEXT)"
    columns = _FINGERPRINT_COLUMNS.replace("features, availability, version, metadata", "")
    sql = f"SELECT {columns} availability, version, {cast} FROM models ORDER BY id"
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql)).all()
    normalised = []
    for row in rows:
        values = list(row)
        if not is_postgres(engine):  # JSON text from SQLite: compare parsed, not spelled
            values[-1] = orjson.loads(values[-1]) if values[-1] else None
            values[-2] = orjson.loads(values[-2]) if values[-2] else None
        else:
            values[-1] = orjson.loads(values[-1]) if values[-1] else None
        normalised.append(
            tuple(str(v) if not isinstance(v, str | int | bool | type(None)) else v for v in values)
        )
    return normalised


def fingerprint(engine: Engine) -> str:
    """SHA-256 of the full ``models`` table content (all columns but the timestamps)."""
    return hashlib.sha256(repr(table_rows(engine)).encode()).hexdigest()


def pg_fingerprint(engine: Engine) -> tuple[int, str]:
    """Row count and md5 of the whole table computed by PostgreSQL itself (fast on 5,000 rows)."""
    sql = (
        f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t.id), '')) "
        f"FROM (SELECT {_FINGERPRINT_COLUMNS} FROM models) t"
    )
    with engine.connect() as conn:
        count, digest = conn.execute(sa.text(sql)).one()
    return count, digest


def audit_rows(engine: Engine) -> list[dict[str, Any]]:
    """MODELS_SYNC audit rows, oldest first."""
    return list(reversed(audit.list_audit(engine, action=audit.SYNC_ACTION, limit=100_000)))


def lock_is_free(engine: Engine, wait: float = 10.0) -> bool:
    """Whether the sync lock is free (polling up to ``wait`` s: a killed backend needs a moment)."""
    deadline = time.monotonic() + wait
    while True:
        if current_holder(engine) is None and (
            not is_postgres(engine) or _pg_advisory_count(engine) == 0
        ):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _pg_advisory_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = :c AND objid = :o AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"c": LOCK_KEY[0], "o": LOCK_KEY[1]},
        ).scalar_one()


def connections(engine: Engine) -> int:
    """Sessions open on this PostgreSQL database, this one excluded."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
        ).scalar_one()


def cli_env(
    db_url: str, litellm_url: str | None, key: str | None = None, **extra: str
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LITELLM_", "SYNC_API", "DATABASE_URL", "NODE_ENV"))
    }
    env["DATABASE_URL"] = db_url
    env["PYTHONPATH"] = str(ROOT)
    if litellm_url:
        env["LITELLM_API_URL"] = litellm_url
    if key:
        env["LITELLM_API_KEY"] = key
    env.update(extra)
    return env


def run_cli(
    args: Sequence[str], env: Mapping[str, str], *, fast: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m sync_core ...`` (or its fast-timeout twin) in a subprocess."""
    return subprocess.run(
        [*(FAST_CLI if fast else REAL_CLI), *args],
        env=dict(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def make_engine(url: str, **kw: Any) -> Engine:
    return create_db_engine(url, **kw)


# --- catalogues --------------------------------------------------------------------------------


def big_entry(i: int, price_set: int) -> dict[str, Any]:
    """A realistic-looking entry; ``price_set`` changes both prices of every model."""
    return {
        "model_name": f"model-{i:05d}",
        "litellm_params": {"model": f"provider{i % 7}/model-{i:05d}", "api_base": "http://x:1"},
        "model_info": {
            "id": f"dep-{i:05d}",
            "litellm_provider": f"provider{i % 7}",
            "mode": "chat",
            "max_tokens": 4096,
            "max_input_tokens": 8192 + i,
            "input_cost_per_token": round((i % 97 + 1) * 1e-7 * (price_set + 1), 10),
            "output_cost_per_token": round((i % 89 + 1) * 2e-7 * (price_set + 1), 10),
            "supports_vision": i % 3 == 0,
            "supports_function_calling": i % 2 == 0,
            "description": f"Model number {i}",
        },
    }


def big_catalogue(n: int, price_set: int) -> list[dict[str, Any]]:
    return [big_entry(i, price_set) for i in range(n)]


def random_catalogue(
    rng: random.Random, previous: list[dict[str, Any]] | None, pool: int = 60
) -> list[dict[str, Any]]:
    """The previous catalogue changed at random: models come and go, prices, flags, context and
    descriptions change; sometimes duplicates, wildcards and bad entries appear."""
    entries = {
        e["model_name"]: e
        for e in (previous or [])
        if isinstance(e, dict)
        and isinstance(e.get("model_name"), str)
        and "*" not in e["model_name"]
        and not e["model_name"].startswith("bad-")
    }
    for _ in range(rng.randint(0, 6)):
        name = f"m-{rng.randrange(pool):03d}"
        op = rng.random()
        if op < 0.3 and name in entries:
            del entries[name]
            continue
        e = entries.get(name) or {
            "model_name": name,
            "litellm_params": {"model": f"p{rng.randrange(4)}/{name}"},
            "model_info": {"id": f"dep-{name}", "max_input_tokens": 4096},
        }
        e = orjson.loads(orjson.dumps(e))
        info = e["model_info"]
        info["input_cost_per_token"] = rng.choice(
            [None, 0, 1e-6, 2.5e-6, rng.randrange(1, 9999) * 1e-9]
        )
        info["output_cost_per_token"] = rng.choice([None, 0, 3e-6, rng.randrange(1, 9999) * 1e-9])
        info["max_input_tokens"] = rng.choice([None, 4096, 8192, 128000, rng.randrange(1, 10**6)])
        info["supports_vision"] = rng.random() < 0.5
        info["supports_function_calling"] = rng.random() < 0.5
        info["supports_parallel_function_calling"] = rng.random() < 0.3
        info["description"] = rng.choice([None, "upstream text", f"v{rng.randrange(100)}"])
        if rng.random() < 0.2:
            e["litellm_params"]["custom_llm_provider"] = rng.choice(["azure", "bedrock"])
        entries[name] = e
    result = list(entries.values())
    rng.shuffle(result)
    if rng.random() < 0.15 and result:  # a second deployment of one name
        twin = orjson.loads(orjson.dumps(rng.choice(result)))
        twin["model_info"]["id"] = "dep-twin-" + twin["model_name"]
        twin["model_info"]["input_cost_per_token"] = 9e-6
        result.append(twin)
    if rng.random() < 0.1:
        result.append(
            {
                "model_name": "openai/*",
                "litellm_params": {"model": "openai/*"},
                "model_info": {"id": "wild"},
            }
        )
    if rng.random() < 0.1:
        result.append(
            {
                "model_name": f"bad-{rng.randrange(3)}",
                "model_info": {"input_cost_per_token": "lots"},
            }
        )
    return result


# --- an independent oracle of DESIGN.md's plan rules (litellm_wins) ----------------------------


def expected_rows(
    entries: list[Any], before: Mapping[str, ModelRow], *, mark_unavailable: bool
) -> dict[str, ModelRow]:
    """What the table must hold after a successful litellm_wins sync of ``entries``."""
    import dataclasses

    mapped = map_catalogue(entries)
    rejected = {s.model_id for s in mapped.skips if s.kind == "data_error"}
    after: dict[str, ModelRow] = {}
    for model_id, desired in mapped.rows.items():
        current = before.get(model_id)
        description = (
            desired.description
            if current is None or current.description is None
            else current.description
        )
        after[model_id] = dataclasses.replace(desired, description=description)
    for model_id, row in before.items():
        if model_id in after:
            continue
        if row.availability == "available" and mark_unavailable and model_id not in rejected:
            after[model_id] = dataclasses.replace(row, availability="unavailable")
        else:
            after[model_id] = row
    return after


def current_rows(engine: Engine) -> dict[str, ModelRow]:
    with engine.connect() as conn:
        return read_current_rows(conn)


def pg_server_of(url: str) -> str:
    base, _, _ = url.rpartition("/")
    return base + "/postgres"
