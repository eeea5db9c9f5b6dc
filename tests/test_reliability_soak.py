"""Soak: hundreds of syncs against a catalogue that changes at random between them (seeded).

After every sync the table equals what an independent oracle of DESIGN.md's rules expects
(``map_catalogue`` + insert / update with the admin's description kept / mark unavailable /
restore / never delete / the empty-catalogue guard). Admins edit descriptions and prices between
syncs; options vary. Memory (tracemalloc, RSS), open file descriptors and PostgreSQL sessions
(``pg_stat_activity``) must not grow.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import tracemalloc
from collections import Counter

import pytest
import sqlalchemy as sa

from sync_core.access import Actor
from sync_core.mapping import map_catalogue
from sync_core.plan import SyncOptions
from sync_core.sync import SyncService
from tests.reliability.helpers import (
    connections,
    current_rows,
    expected_rows,
    lock_is_free,
    make_engine,
    random_catalogue,
)

SEED = 5005
SYNCS = {"sqlite": 500, "postgresql": 150}
ADMIN = Actor("soak@example.com", "admin")


class ListSource:
    mode = "test"
    model_info_url = "test://soak"

    def __init__(self):
        self.entries: list = []

    def fetch_entries(self):
        return list(self.entries)  # map_catalogue never mutates its input

    cached_entries = fetch_entries

    def clear_cache(self):
        return None


class CountingHandler(logging.Handler):
    """Formats every record (as a real handler would) and keeps only counts: pytest's own log
    capture stores every record and would itself look like a leak."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.counts: Counter[str] = Counter()

    def emit(self, record):
        self.format(record)
        self.counts[record.levelname] += 1


@pytest.fixture
def quiet_logs():
    logger = logging.getLogger("sync_core")
    handler = CountingHandler()
    logger.addHandler(handler)
    logger.propagate, level = False, logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.propagate = True
    logger.setLevel(level)


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_soak_random_catalogue(kind, request, quiet_logs):
    url = request.getfixturevalue("pg_url" if kind == "postgresql" else "sqlite_url")
    engine = make_engine(url)
    source = ListSource()
    service = SyncService(engine, source)
    rng = random.Random(SEED)
    stats: Counter[str] = Counter()
    syncs = SYNCS[kind]
    warmup = syncs // 5
    samples: dict[str, list[int]] = {"fds": [], "sessions": []}
    catalogue: list = []

    def step(i: int) -> None:
        """One sync and its check; keeps nothing alive between calls but ``catalogue``."""
        nonlocal catalogue
        catalogue = random_catalogue(rng, catalogue)
        served = [] if rng.random() < 0.03 else catalogue  # LiteLLM lost its list: guard holds
        source.entries = served
        before = current_rows(engine)
        if before and rng.random() < 0.1:  # an admin edits a row between syncs
            victim = rng.choice(sorted(before))
            column = rng.choice(["description", "input_cost_per_token"])
            value = f"curated {i}" if column == "description" else "0.5"
            with engine.begin() as conn:
                conn.execute(
                    sa.text(f"UPDATE models SET {column} = :v WHERE id = :id"),
                    {"v": value, "id": victim},
                )
            before = current_rows(engine)
            stats["admin_edits"] += 1
        options = SyncOptions(
            force_update=rng.random() < 0.15, mark_unavailable=rng.random() < 0.85
        )
        result = service.run(options, trigger="schedule", actor=ADMIN)

        mapped = map_catalogue(served)
        rejected = {s.model_id for s in mapped.errors}
        would_mark = options.mark_unavailable and any(
            r.availability == "available" and k not in rejected for k, r in before.items()
        )
        if not mapped.rows and would_mark:  # the empty-catalogue guard must refuse
            assert not result.success and result.error_kind == "guard", i
        if not result.success and result.error_kind == "guard":  # any guard: nothing written
            assert current_rows(engine) == before, i
            stats["guarded_empty" if not mapped.rows else "guarded_other"] += 1
        else:
            assert result.success, (i, result.error_message)
            assert current_rows(engine) == expected_rows(
                served, before, mark_unavailable=options.mark_unavailable
            ), i
            stats["ok"] += 1
            stats["inserted"] += result.new_models
            stats["updated"] += result.updated_models
            stats["marked_unavailable"] += result.unavailable_models
            stats["restored"] += result.restored_models
            stats["data_errors"] += len(result.errors)

    for i in range(syncs):
        if i == warmup:
            gc.collect()
            tracemalloc.start()
            base_mem, base_rss = tracemalloc.get_traced_memory()[0], _rss_kb()
        step(i)
        if i >= warmup and i % 10 == 0:
            samples["fds"].append(_fds())
            if kind == "postgresql":
                samples["sessions"].append(connections(engine))
    gc.collect()
    grown_mem = tracemalloc.get_traced_memory()[0] - base_mem
    tracemalloc.stop()
    grown_rss = _rss_kb() - base_rss
    cache_entries = len(engine._compiled_cache or {})
    assert lock_is_free(engine, wait=0)
    with engine.connect() as conn:
        audits = conn.execute(sa.text("SELECT count(*) FROM audit_logs")).scalar()
    assert audits == syncs
    engine.dispose()
    print(
        f"\n[soak {kind}] seed={SEED} syncs={syncs} {dict(stats)} "
        f"traced_growth={grown_mem / 1024:.0f}KiB rss_growth={grown_rss}KiB "
        f"fds={min(samples['fds'])}..{max(samples['fds'])} "
        f"sessions={samples['sessions'] and (min(samples['sessions']), max(samples['sessions']))} "
        f"log_records={dict(quiet_logs.counts)} compiled_cache={cache_entries}"
    )
    assert stats["guarded_empty"] >= 1 and stats["ok"] >= syncs * 0.9
    # Retaining one sync's plan or catalogue (~60 rows) would add ~50 KiB per sync, i.e. over
    # 10 MiB here. What does grow, once, is bounded: SQLAlchemy's compiled-statement LRU cache
    # (statement texts vary with the number of rows written) fills up to its 500 entries.
    assert grown_mem < 2 * 1024 * 1024, f"traced memory grew {grown_mem} bytes"
    assert grown_rss < 30 * 1024, f"RSS grew {grown_rss} KiB"
    assert max(samples["fds"]) <= samples["fds"][0] + 2
    if kind == "postgresql":
        assert max(samples["sessions"]) <= max(samples["sessions"][0], 1) + 1
