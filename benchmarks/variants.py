"""One measured variant, run in a fresh interpreter by :mod:`benchmarks.run`.

    python -m benchmarks.variants '{"variant": "product", "db_url": ..., "base_url": ...}'

Prints one JSON line: ``seconds`` (wall time of the measured work, after imports), ``statements``
(SQL statements sent, where countable), ``peak_rss_kb`` (this process's peak resident set) and
variant-specific details. Each variant is its own process so peak RSS is its own.
"""

from __future__ import annotations

import http.client
import resource
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

MODEL_COLUMNS = (
    "id",
    "name",
    "provider",
    "description",
    "context_length",
    "input_cost_per_token",
    "output_cost_per_token",
    "supports_vision",
    "supports_function_calling",
    "supports_parallel_function_calling",
    "supports_tool_choice",
    "supports_streaming",
    "features",
    "availability",
    "metadata",
)


def _count_statements(engine: Any) -> list[int]:
    import sqlalchemy as sa

    counter = [0]

    def on_execute(*_args: Any) -> None:
        counter[0] += 1

    sa.event.listen(engine, "before_cursor_execute", on_execute)
    return counter


# --- this product --------------------------------------------------------------------------------


def product(args: dict[str, Any]) -> dict[str, Any]:
    """The real SyncService with the real LiteLLMClient over HTTP, as ``litemaas-sync sync``."""
    from sync_core import sync as sync_module
    from sync_core.access import SYSTEM
    from sync_core.db import create_db_engine
    from sync_core.litellm import LiteLLMClient
    from sync_core.sync import SyncService

    mapped_at: list[float] = []
    real_map_answer = sync_module.map_answer

    def map_answer(*call: Any) -> Any:  # the end of the mapping: the database phase follows
        try:
            return real_map_answer(*call)
        finally:
            mapped_at.append(time.perf_counter())

    sync_module.map_answer = map_answer
    started = time.perf_counter()
    engine = create_db_engine(args["db_url"])
    counter = _count_statements(engine)
    service = SyncService(engine, LiteLLMClient(args["base_url"], timeout=600))
    result = service.run(service.options(), trigger="cli", actor=SYSTEM)
    ended = time.perf_counter()
    seconds = ended - started
    if not result.success:
        raise SystemExit(f"sync failed: {result.error_message}")
    return {
        "seconds": seconds,
        "db_seconds": ended - mapped_at[0] if mapped_at else None,
        "statements": counter[0],
        "new": result.new_models,
        "updated": result.updated_models,
        "unchanged": result.unchanged_models,
    }


# --- the floor: fetch + orjson + COPY, the best pipeline this machine runs -----------------------


def _fetch(base_url: str) -> bytearray:
    """One GET into a buffer of the announced length (no chunk list, no join)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    conn.request("GET", parts.path + "/model/info")
    response = conn.getresponse()
    length = int(response.getheader("Content-Length"))
    buffer = bytearray(length)
    view = memoryview(buffer)
    position = 0
    while position < length:
        read = response.readinto(view[position:])
        if not read:
            raise OSError("body cut short")
        position += read
    conn.close()
    return buffer


def _lean_rows(entries: list[dict[str, Any]], *, sqlite: bool) -> list[tuple[Any, ...]]:
    """The same columns the product writes, mapped with the least Python work possible."""
    rows = []
    for e in entries:
        info = e.get("model_info") or {}
        params = e.get("litellm_params") or {}
        name = e["model_name"]
        model = params.get("model") or ""
        provider = (
            params.get("custom_llm_provider")
            or (model.split("/", 1)[0] if "/" in model else None)
            or info.get("litellm_provider")
            or "unknown"
        )
        cost_in = info.get("input_cost_per_token")
        if cost_in is None:
            cost_in = params.get("input_cost_per_token")
        cost_out = info.get("output_cost_per_token")
        if cost_out is None:
            cost_out = params.get("output_cost_per_token")
        context = info.get("max_input_tokens")
        if context is None:
            context = info.get("max_tokens")
        vision = bool(info.get("supports_vision"))
        function_calling = bool(info.get("supports_function_calling"))
        parallel = bool(info.get("supports_parallel_function_calling"))
        features = [
            f
            for f, on in (
                ("function_calling", function_calling),
                ("parallel_function_calling", parallel),
                ("vision", vision),
            )
            if on
        ] + ["chat"]
        metadata = orjson.dumps(
            {
                "litellm_model_info": {k: v for k, v in info.items() if v is not None},
                "litellm_params": {k: v for k, v in params.items() if v is not None},
            }
        ).decode()
        streaming = info.get("supports_streaming")
        rows.append(
            (
                name,
                name,
                provider,
                info.get("description"),
                context,
                cost_in,
                cost_out,
                vision,
                function_calling,
                parallel,
                bool(info.get("supports_tool_choice")),
                True if streaming is None else bool(streaming),
                orjson.dumps(features).decode() if sqlite else features,
                "available",
                metadata,
            )
        )
    return rows


def floor(args: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    entries = orjson.loads(_fetch(args["base_url"]))["data"]
    sqlite = args["db_url"].startswith("sqlite")
    rows = _lean_rows(entries, sqlite=sqlite)
    del entries
    mapped_at = time.perf_counter()
    columns = ", ".join(MODEL_COLUMNS)
    if sqlite:
        import sqlite3

        conn = sqlite3.connect(args["db_url"].removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN")
        marks = ", ".join("?" * len(MODEL_COLUMNS))
        conn.executemany(f"INSERT INTO models ({columns}) VALUES ({marks})", rows)
        conn.execute("COMMIT")
        conn.close()
        statements = 3
    else:
        import psycopg

        with (
            psycopg.connect(args["db_url"].replace("+psycopg", "")) as conn,
            conn.cursor() as cur,
            cur.copy(f"COPY models ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        statements = 2  # COPY, COMMIT (psycopg sends BEGIN with it)
    ended = time.perf_counter()
    return {"seconds": ended - started, "db_seconds": ended - mapped_at,
            "statements": statements, "new": len(rows)}


# --- the per-model baseline: the reference implementation's loop --------------------------------


def per_model(args: dict[str, Any]) -> dict[str, Any]:
    """Same fetch, parse and mapping as the product; then SELECT + INSERT/UPDATE per model."""
    import sqlalchemy as sa

    from sync_core.db import create_db_engine, is_postgres
    from sync_core.litellm import LiteLLMClient
    from sync_core.mapping import map_catalogue

    started = time.perf_counter()
    engine = create_db_engine(args["db_url"])
    counter = _count_statements(engine)
    catalogue = map_catalogue(LiteLLMClient(args["base_url"], timeout=600).fetch_entries())
    mapped_at = time.perf_counter()
    postgres = is_postgres(engine)
    meta = "CAST(:metadata AS jsonb)" if postgres else ":metadata"
    names = ", ".join(MODEL_COLUMNS)
    values = ", ".join(f":{c}" if c != "metadata" else meta for c in MODEL_COLUMNS)
    insert = sa.text(
        f"INSERT INTO models ({names}, created_at, updated_at) "
        f"VALUES ({values}, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    sets = ", ".join(
        f"{c} = {meta}" if c == "metadata" else f"{c} = :{c}" for c in MODEL_COLUMNS[1:]
    )
    update = sa.text(f"UPDATE models SET {sets}, updated_at = CURRENT_TIMESTAMP WHERE id = :id")
    select = sa.text(f"SELECT {names} FROM models WHERE id = :id")
    inserted = updated = 0
    with engine.begin() as conn:
        for row in catalogue.rows.values():
            params = {
                c: getattr(row, c) for c in MODEL_COLUMNS if c not in ("features", "metadata")
            }
            params["features"] = (
                list(row.features) if postgres else orjson.dumps(row.features).decode()
            )
            params["metadata"] = row.metadata_json.decode()
            if not postgres:  # the product stores SQLite prices as exact text, so does this
                for cost in ("input_cost_per_token", "output_cost_per_token"):
                    if params[cost] is not None:
                        params[cost] = str(params[cost])
            if conn.execute(select, {"id": row.id}).first() is None:
                conn.execute(insert, params)
                inserted += 1
            else:
                conn.execute(update, params)
                updated += 1
    ended = time.perf_counter()
    return {
        "seconds": ended - started,
        "db_seconds": ended - mapped_at,
        "statements": counter[0],
        "new": inserted,
        "updated": updated,
    }


# --- plan() alone ------------------------------------------------------------------------------


def plan_only(args: dict[str, Any]) -> dict[str, Any]:
    """``build_plan`` on N mapped models, against an empty database and an identical one."""
    from benchmarks.catalogue import generate_entries
    from sync_core.mapping import map_catalogue
    from sync_core.plan import build_plan

    entries = generate_entries(args["n"], args.get("seed", 42))
    started = time.perf_counter()
    catalogue = map_catalogue(entries)
    mapped = time.perf_counter() - started
    current = dict(catalogue.rows)
    started = time.perf_counter()
    build_plan(catalogue, {})
    empty = time.perf_counter() - started
    started = time.perf_counter()
    plan = build_plan(catalogue, current)
    same = time.perf_counter() - started
    assert plan.summary["unchanged"] == args["n"]
    return {"seconds": same, "plan_vs_empty": empty, "map_catalogue": mapped, "statements": 0}


def peak_rss_kb() -> int:
    """This process's peak resident set (VmHWM; ru_maxrss would include the forked parent's)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


VARIANTS = {"product": product, "floor": floor, "per_model": per_model, "plan": plan_only}


def main() -> None:
    args = orjson.loads(sys.argv[1])
    result = VARIANTS[args["variant"]](args)
    result["peak_rss_kb"] = peak_rss_kb()
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
