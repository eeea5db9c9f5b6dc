"""Where a sync's time goes: the product's phases, timed inside one real sync.

    .venv/bin/python -m benchmarks.phases [--n 10000] [--db pg|sqlite] [--repeat 3]

A first sync of N generated models, then a re-sync with 1% of the prices changed, each in a
fresh interpreter (as ``benchmarks.run`` measures them), against a fresh database. The measured
process wraps the sync's steps with timers (fetch, mapping, reading the rows, planning, writing,
the two records) and counts the cyclic collector's time; "other" is the rest (lock, connect,
commit, audit). Medians of ``--repeat`` runs. For the side-by-side ratios use ``benchmarks.run``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from benchmarks.catalogue import body, change_some, generate_entries
from benchmarks.run import DEFAULT_PG, Databases
from benchmarks.server import CatalogueServer

#: Phases timed inside another one (not added again to the total).
NESTED = "  - "
PHASES = (
    ("sync_core.litellm", "LiteLLMClient.fetch_body", "fetch"),
    ("sync_core.sync", "map_answer", "map (split, parse, map)"),
    ("sync_core.known_entries", "load", "known entries: load"),
    ("sync_core.known_entries", "resolve", "known entries: resolve (with the reads marked -)"),
    ("sync_core.known_entries", "row_versions", NESTED + "read row versions"),
    ("sync_core.known_entries", "read_current_rows", NESTED + "read rows"),
    ("sync_core.sync", "build_plan", "plan"),
    ("sync_core.sync", "apply_plan", "write"),
    ("sync_core.known_entries", "record", "known entries: record"),
    ("sync_core.fast_path", "record", "fast path: record"),
    ("sync_core.sync", "audit.write_audit", "audit row"),
)


def _wrap(module_name: str, attribute: str, label: str, totals: dict[str, float]) -> None:
    owner: Any = sys.modules[module_name]
    *path, name = attribute.split(".")
    for part in path:
        owner = getattr(owner, part)
    real = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            totals[label] += time.perf_counter() - started

    setattr(owner, name, timed)


def worker(args: dict[str, Any]) -> dict[str, Any]:
    """In the measured process: one sync with its phases timed."""
    from sync_core.access import SYSTEM
    from sync_core.db import create_db_engine
    from sync_core.litellm import LiteLLMClient
    from sync_core.sync import SyncService

    totals: dict[str, float] = defaultdict(float)
    for module_name, attribute, label in PHASES:
        _wrap(module_name, attribute, label, totals)
    collecting = [0.0, 0.0]

    def on_gc(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            collecting[1] = time.perf_counter()
        else:
            collecting[0] += time.perf_counter() - collecting[1]

    gc.callbacks.append(on_gc)
    started = time.perf_counter()
    engine = create_db_engine(args["db_url"])
    service = SyncService(engine, LiteLLMClient(args["base_url"], timeout=600))
    result = service.run(service.options(), trigger="cli", actor=SYSTEM)
    total = time.perf_counter() - started
    if not result.success:
        raise SystemExit(f"sync failed: {result.error_message}")
    phases = dict(totals)
    phases["cyclic GC (inside the above)"] = collecting[0]
    phases["other (lock, connect, commit, ...)"] = total - sum(
        seconds for label, seconds in totals.items() if not label.startswith(NESTED))
    return {"total": total, "phases": phases, "fast_path": result.fast_path}


def _run(args: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.phases", "--worker",
                           orjson.dumps(args).decode()], capture_output=True, text=True,
                          check=False)
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    return orjson.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--db", default="pg", choices=["pg", "sqlite"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        print(orjson.dumps(worker(orjson.loads(options.worker))).decode())
        return

    entries = generate_entries(options.n)
    first = body(entries)
    change_some(entries, 0.01)
    changed = body(entries)
    runs: dict[str, list[dict[str, Any]]] = {"first sync": [], "re-sync 1%": []}
    with tempfile.TemporaryDirectory() as tmp, CatalogueServer() as server:
        server.bodies.update({"first": first, "changed": changed})
        databases = Databases(options.pg if options.db == "pg" else None, Path(tmp))
        databases.setup()
        try:
            for _ in range(options.repeat):
                url, drop = databases.fresh(options.db)
                runs["first sync"].append(_run({"db_url": url,
                                                "base_url": server.base_url("first")}))
                runs["re-sync 1%"].append(_run({"db_url": url,
                                                "base_url": server.base_url("changed")}))
                drop()
        finally:
            databases.close()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} — {options.n:,} models, {options.db}, "
          f"medians of {options.repeat} runs, seconds")
    print("| phase | first sync | re-sync 1% |")
    print("|---|---|---|")
    labels = list(runs["first sync"][0]["phases"])
    for label in [*labels, "total"]:
        cells = []
        for scenario in runs.values():
            values = [r["total"] if label == "total" else r["phases"].get(label, 0.0)
                      for r in scenario]
            cells.append(f"{statistics.median(values):.3f}")
        print(f"| {label} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
