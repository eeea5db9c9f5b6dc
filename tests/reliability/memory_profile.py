"""Traced memory of the sync engine over many syncs, outside pytest (whose own bookkeeping
blurs small numbers). Prints the growth after every 150 syncs; a leak shows as a rising line.

    .venv/bin/python -m tests.reliability.memory_profile [rounds]
"""

from __future__ import annotations

import gc
import logging
import random
import sys
import tempfile
import tracemalloc

from sync_core import migrate
from sync_core.access import Actor
from sync_core.plan import SyncOptions
from sync_core.sync import SyncService
from tests.reliability.helpers import make_engine, random_catalogue


class _Source:
    mode = "test"
    model_info_url = "test://memory"
    entries: list = []

    def fetch_entries(self):
        return list(self.entries)

    cached_entries = fetch_entries

    def clear_cache(self):
        return None


def main(rounds: int = 8) -> None:
    logging.disable(logging.CRITICAL)
    engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/memory.sqlite3")
    migrate.upgrade(engine)
    source, rng = _Source(), random.Random(5005)
    service = SyncService(engine, source)
    actor = Actor("memory", "admin")

    def syncs(n: int) -> None:
        for _ in range(n):
            source.entries = random_catalogue(rng, source.entries)
            options = SyncOptions(
                force_update=rng.random() < 0.15, mark_unavailable=rng.random() < 0.85
            )
            service.run(options, trigger="schedule", actor=actor)

    syncs(100)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for k in range(1, rounds + 1):
        syncs(150)
        gc.collect()
        print(
            f"after {100 + 150 * k} syncs: +{(tracemalloc.get_traced_memory()[0] - base) // 1024} KiB"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
