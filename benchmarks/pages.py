"""Render time of the catalogue and diff pages under AppTest with N models (default 10,000).

    .venv/bin/python -m benchmarks.pages [--n 10000] [--repeat 3]

A fresh migrated SQLite file is synced with N realistic models, then LiteLLM (the benchmark
catalogue server) serves the same catalogue with 1% of the prices changed, so the diff page has
real work. The first render (start-up: migrations, start-up sync, caches) is reported apart from
the warm renders an admin sees afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pages", description=__doc__)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args(argv)

    from streamlit.testing.v1 import AppTest

    from benchmarks.catalogue import body, change_some, generate_entries
    from benchmarks.server import CatalogueServer
    from sync_core import migrate
    from sync_core.access import SYSTEM
    from sync_core.db import create_db_engine
    from sync_core.litellm import LiteLLMClient
    from sync_core.sync import SyncService

    workdir = Path(tempfile.mkdtemp(prefix="litemaas-pages-"))
    url = f"sqlite:///{workdir / 'models.sqlite3'}"
    entries = generate_entries(opts.n)
    with CatalogueServer() as server:
        server.bodies["v0"] = body(entries)
        change_some(entries, 0.01)
        server.bodies["v1"] = body(entries)
        engine = create_db_engine(url)
        migrate.upgrade(engine)
        service = SyncService(engine, LiteLLMClient(server.base_url("v0"), timeout=600))
        assert service.run(trigger="cli", actor=SYSTEM).success
        engine.dispose()
        for name in ("NODE_ENV", "LITELLM_API_KEY", "LITELLM_BASE_URL", "SYNC_API_TOKEN"):
            os.environ.pop(name, None)
        os.environ.update(
            DATABASE_URL=url, LITELLM_API_URL=server.base_url("v1"), LITELLM_AUTO_SYNC="false"
        )

        def render(page: str | None) -> float:
            started = time.perf_counter()
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
            at.run()
            if page:
                at.switch_page(page).run()
            assert not at.exception, [e.value for e in at.exception]
            return time.perf_counter() - started

        first = render(None)
        results = {"first render (start-up)": [first]}
        for label, page in (("catalogue", None), ("diff", "pages/diff.py")):
            results[label] = [render(page) for _ in range(opts.repeat)]
    print(f"AppTest render times with {opts.n:,} models (SQLite), seconds:")
    for label, runs in results.items():
        print(
            f"  {label:<26} median {statistics.median(runs):6.2f}  runs {[round(r, 2) for r in runs]}"
        )
    print("  (the diff page is rendered after the catalogue page in the same session)")


if __name__ == "__main__":
    main()
