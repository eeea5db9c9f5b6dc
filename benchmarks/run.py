"""The benchmark: this product against the COPY floor and the per-model baseline, in one run.

    .venv/bin/python -m benchmarks.run [--sizes 1000,10000,25000] [--repeat 5] [--db pg,sqlite]

Every measurement is a fresh interpreter (``benchmarks.variants``) so peak RSS is its own; the
catalogue is served over HTTP on loopback by this process. Each PostgreSQL run gets a fresh
database cloned from a migrated template; each SQLite run a copy of a migrated file. Medians of
``--repeat`` runs, variants interleaved. Round trips are counted in one extra run per variant
through a counting TCP proxy; "@1ms RTT" projects the time across a network with a 1 ms round
trip as ``median + round trips × 1 ms`` (loopback round trips cost ~0.05 ms, ignored). The
"first @1ms RTT" rows measure it instead: the floor, the product and the per-model loop at
``--rtt-size`` models, each run through a proxy that delays every turn of the conversation
(``--rtt-ms``, half each way). "DB phase" is the part of a run after the catalogue is mapped
(the floor: after its rows are built), the part the per-model loop does differently.
"whole process" rows time entire processes from outside, interpreter start to exit: the
floor's process and ``litemaas-sync sync`` as an admin runs it (imports, configuration, schema
check, the sync, its snapshot and history listeners); ``--no-process`` skips them, and the
"re-sync … process" rows, ``litemaas-sync sync`` again after a first ``litemaas-sync sync``.
The lines under the table give the re-sync ratios: 1% changed against nothing changed, and
nothing changed against the first sync.
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import psycopg

from benchmarks.catalogue import body, change_some, generate_entries
from benchmarks.server import CatalogueServer, RoundTripProxy

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


# --- databases -----------------------------------------------------------------------------------


class Databases:
    def __init__(self, pg_server: str | None, workdir: Path):
        self.pg_server = pg_server
        self.workdir = workdir
        self.template: str | None = None
        self.sqlite_template = workdir / "template.sqlite3"
        self._pg_created: list[str] = []

    def setup(self) -> None:
        from sync_core import migrate
        from sync_core.db import create_db_engine

        if self.pg_server:
            self.template = self._create_pg(None, "lms_bench_template")
            engine = create_db_engine(self._url(self.template))
            migrate.upgrade(engine)
            engine.dispose()
        engine = create_db_engine(f"sqlite:///{self.sqlite_template}")
        migrate.upgrade(engine)
        engine.dispose()

    def _url(self, name: str, port: int | None = None) -> str:
        base = self.pg_server.rpartition("/")[0]  # type: ignore[union-attr]
        if port is not None:
            base = base.rsplit(":", 1)[0] + f":{port}"
        return f"{base}/{name}"

    def _create_pg(self, template: str | None, prefix: str = "lms_bench") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.pg_server, autocommit=True) as conn:
            conn.execute(
                f'CREATE DATABASE "{name}"' + (f" TEMPLATE {template}" if template else "")
            )
        self._pg_created.append(name)
        return name

    def fresh(self, kind: str, proxy_port: int | None = None) -> tuple[str, Any]:
        """(url, drop) of a new, migrated, empty database."""
        if kind == "pg":
            name = self._create_pg(self.template)
            return self._url(name, proxy_port), lambda: self.drop_pg(name)
        path = self.workdir / f"{uuid.uuid4().hex[:10]}.sqlite3"
        shutil.copy(self.sqlite_template, path)
        return f"sqlite:///{path}", lambda: [
            p.unlink(missing_ok=True) for p in path.parent.glob(path.name + "*")
        ]

    def drop_pg(self, name: str) -> None:
        with psycopg.connect(self.pg_server, autocommit=True) as conn:  # type: ignore[arg-type]
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._pg_created.remove(name)

    def close(self) -> None:
        for name in list(self._pg_created):
            self.drop_pg(name)


def run_variant(args: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.variants", orjson.dumps(args).decode()],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args['variant']} failed:\n{proc.stdout}\n{proc.stderr}")
    return orjson.loads(proc.stdout.strip().splitlines()[-1])


def run_process(args: dict[str, Any]) -> dict[str, Any]:
    """A whole process timed from outside (interpreter start, imports, work, exit): the floor's
    variant, or ``litemaas-sync sync`` itself as an admin runs it (with its listeners:
    snapshot, per-model history)."""
    if args["variant"] == "cli":
        command = [str(Path(sys.executable).with_name("litemaas-sync")), "sync"]
        env = {**os.environ, "DATABASE_URL": args["db_url"],
               "LITELLM_API_URL": args["base_url"], "LOG_LEVEL": "WARNING"}
    else:
        command = [sys.executable, "-m", "benchmarks.variants", orjson.dumps(args).decode()]
        env = dict(os.environ)
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
        _, status = os.waitpid(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            out.seek(0)
            raise RuntimeError(f"{args['variant']} process failed:\n{out.read().decode()}")
    # (no peak RSS: a forked child starts with the driver's resident set, which holds the
    # catalogues; the in-process rows report the product's and the floor's own)
    return {"seconds": seconds, "peak_rss_kb": 0}


# --- the measurements ----------------------------------------------------------------------------


class Bench:
    def __init__(
        self,
        opts: argparse.Namespace,
        server: CatalogueServer,
        dbs: Databases,
        proxy: RoundTripProxy | None,
        delaying: RoundTripProxy | None = None,
    ):
        self.opts, self.server, self.dbs, self.proxy = opts, server, dbs, proxy
        self.delaying = delaying
        self.results: list[dict[str, Any]] = []

    def measure(
        self,
        n: int,
        scenario: str,
        variants: Sequence[str],
        kind: str,
        catalogue: str,
        setup_catalogue: str | None = None,
        raw_bytes: int = 0,
        process: bool = False,
        delayed: bool = False,
    ) -> None:
        """Medians of --repeat runs of each variant, the variants interleaved run by run (a
        shared machine's speed drifts: each variant sees the same drift), plus one
        round-trip-counting run per variant on PostgreSQL (``process``: whole processes timed
        from outside, no counting; ``delayed``: every run through the delaying proxy, which
        counts too)."""
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        trips: dict[str, int | None] = dict.fromkeys(variants)
        for _ in range(self.opts.repeat):
            for variant in variants:
                if delayed:
                    self.delaying.reset()  # type: ignore[union-attr]
                runs[variant].append(self._once(variant, kind, catalogue, setup_catalogue,
                                                process=process, delayed=delayed))
                if delayed:
                    trips[variant] = self.delaying.reset()  # type: ignore[union-attr]
        if self.proxy is not None and kind == "pg" and not process and not delayed:
            for variant in variants:
                self.proxy.reset()
                self._once(variant, kind, catalogue, setup_catalogue, counted=True)
                trips[variant] = self.proxy.reset()
        for variant in variants:
            self._record(n, scenario, variant, kind, runs[variant], trips[variant], raw_bytes,
                         delayed)

    def _record(self, n: int, scenario: str, variant: str, kind: str,
                runs: list[dict[str, Any]], trips: int | None, raw_bytes: int,
                delayed: bool) -> None:
        seconds = statistics.median(r["seconds"] for r in runs)
        database = [r["db_seconds"] for r in runs if r.get("db_seconds") is not None]
        row = {
            "n": n,
            "scenario": scenario,
            "variant": variant,
            "db": kind,
            "seconds": seconds,
            "runs": [round(r["seconds"], 3) for r in runs],
            "db_seconds": statistics.median(database) if database else None,
            "statements": runs[-1].get("statements"),
            "round_trips": trips,
            "measured_rtt": delayed,
            "peak_rss_mb": max(r["peak_rss_kb"] for r in runs) / 1024,
            "raw_json_mb": raw_bytes / 1e6,
            "detail": {
                k: v
                for k, v in runs[-1].items()
                if k not in ("seconds", "statements", "peak_rss_kb")
            },
        }
        self.results.append(row)
        print(
            f"  {n:>6} {scenario:<14} {variant:<9} {kind:<6} {seconds:8.3f} s  {row['runs']}",
            file=sys.stderr,
            flush=True,
        )

    def _once(
        self,
        variant: str,
        kind: str,
        catalogue: str,
        setup_catalogue: str | None,
        counted: bool = False,
        process: bool = False,
        delayed: bool = False,
    ) -> dict[str, Any]:
        db_url, drop = self.dbs.fresh(kind)
        try:
            if setup_catalogue is not None:  # the first sync, not measured; before a whole
                # process, a whole process too (its listeners took their snapshot, as an
                # admin's earlier `litemaas-sync sync` did)
                setup = {"variant": "cli" if process else "product", "db_url": db_url,
                         "base_url": self.server.base_url(setup_catalogue)}
                run_process(setup) if process else run_variant(setup)
            through = self.delaying if delayed else self.proxy if counted else None
            if through is not None:
                db_url = (
                    db_url.rsplit(":", 1)[0] + f":{through.port}/" + db_url.rsplit("/", 1)[1]
                )
            args = {"variant": variant, "db_url": db_url,
                    "base_url": self.server.base_url(catalogue)}
            return run_process(args) if process else run_variant(args)
        finally:
            drop()


def table(results: list[dict[str, Any]]) -> str:
    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return (r["n"], r["scenario"], r["db"])

    floors = {key(r): r["seconds"] for r in results if r["variant"] == "floor"}
    per_model = {key(r): r for r in results if r["variant"] == "per_model"}
    headers = (
        "N",
        "scenario",
        "variant",
        "db",
        "median s",
        "× floor",
        "per-model ÷",
        "DB phase s",
        "per-model DB ÷",
        "stmts",
        "round trips",
        "@1ms RTT s",
        "per-model@1ms ÷",
        "peak RSS MB",
        "RSS ÷ JSON",
    )
    lines = []
    for r in results:
        f = floors.get(key(r))
        pm = per_model.get(key(r))
        projectable = r["round_trips"] is not None and not r.get("measured_rtt")
        projected = r["seconds"] + r["round_trips"] / 1000 if projectable else None
        pm_projected = (
            pm["seconds"] + pm["round_trips"] / 1000
            if pm and pm["round_trips"] is not None and projectable
            else None
        )
        lines.append(
            (
                f"{r['n']:,}",
                r["scenario"],
                r["variant"],
                r["db"],
                f"{r['seconds']:.3f}",
                f"{r['seconds'] / f:.2f}" if f else "",
                f"{pm['seconds'] / r['seconds']:.1f}×" if pm else "",
                "" if r.get("db_seconds") is None else f"{r['db_seconds']:.3f}",
                f"{pm['db_seconds'] / r['db_seconds']:.1f}×"
                if pm and pm.get("db_seconds") and r.get("db_seconds") else "",
                "" if r["statements"] is None else str(r["statements"]),
                "" if r["round_trips"] is None else str(r["round_trips"]),
                f"{projected:.2f}" if projected is not None else "",
                f"{pm_projected / projected:.1f}×" if projected and pm_projected else "",
                f"{r['peak_rss_mb']:.0f}" if r["peak_rss_mb"] else "",
                f"{r['peak_rss_mb'] * 1.048576 / r['raw_json_mb']:.2f}"
                if r["raw_json_mb"] and r["peak_rss_mb"] else "",
            )
        )
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *lines, strict=True)]
    out = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    out += [
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
        for line in lines
    ]
    return "\n".join(out)


def resync_ratios(results: list[dict[str, Any]]) -> list[str]:
    """Per database and N: the 1% re-sync against the no-change one, and the no-change one
    against the first sync, in-process (product) and as whole processes (cli)."""
    seconds = {(r["n"], r["db"], r["scenario"], r["variant"]): r["seconds"] for r in results}
    lines = []
    for (n, db, scenario, variant), none in sorted(seconds.items()):
        if not scenario.startswith("re-sync 0%"):
            continue
        suffix = scenario.removeprefix("re-sync 0%")
        some = seconds.get((n, db, "re-sync 1%" + suffix, variant))
        first = seconds.get((n, db, "whole process" if suffix else "first sync", variant))
        parts = [f"1% ÷ 0%: {some / none:.2f}" if some else "",
                 f"0% ÷ first sync: {none / first:.2f}" if first else ""]
        lines.append(f"re-sync at {n:,}, {db}, {variant}: " + "; ".join(p for p in parts if p))
    return ["", *lines] if lines else []


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        (
            int(line.split()[1]) // 1024 // 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return f"{os.cpu_count()} CPUs ({cpu}), {mem} GiB RAM, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", default="1000,10000,25000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", default="pg,sqlite", help="pg, sqlite or both")
    parser.add_argument("--pg", default=DEFAULT_PG, help="server URL (may CREATE DATABASE)")
    parser.add_argument(
        "--resync-size", type=int, default=10000, help="N for the re-sync scenarios (0 = skip)"
    )
    parser.add_argument("--plan-size", type=int, default=10000, help="N for plan() (0 = skip)")
    parser.add_argument("--no-per-model", action="store_true")
    parser.add_argument("--no-round-trips", action="store_true")
    parser.add_argument("--no-process", action="store_true",
                        help="skip timing whole processes (the floor and litemaas-sync sync)")
    parser.add_argument("--rtt-ms", type=float, default=1.0,
                        help="round-trip time of the measured network rows (0 = skip them)")
    parser.add_argument("--rtt-size", type=int, default=10000,
                        help="N for the rows measured through the delaying proxy")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    opts = parser.parse_args(argv)
    # the product's bytecode, as an installed copy has it (PYTHONDONTWRITEBYTECODE would
    # otherwise make every measured process compile it again, unlike site-packages)
    compileall.compile_dir(ROOT / "sync_core", quiet=2)
    sizes = [int(s) for s in opts.sizes.split(",") if s]
    kinds = [k.strip() for k in opts.db.split(",") if k.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="litemaas-bench-"))
    dbs = Databases(opts.pg if "pg" in kinds else None, workdir)
    proxy = delaying = None
    started = time.time()
    rtt_size = opts.rtt_size if opts.rtt_ms and "pg" in kinds else 0
    try:
        dbs.setup()
        target = psycopg.conninfo.conninfo_to_dict(opts.pg) if "pg" in kinds else {}
        address = (target.get("host", "127.0.0.1"), int(target.get("port", 5432)))
        if "pg" in kinds and not opts.no_round_trips:
            proxy = RoundTripProxy(*address)
        if rtt_size:
            delaying = RoundTripProxy(*address, rtt_s=opts.rtt_ms / 1000)
        with CatalogueServer() as server:
            bench = Bench(opts, server, dbs, proxy, delaying)
            extra = {opts.resync_size, rtt_size} - {0}
            for n in sorted(set(sizes) | extra):
                entries = generate_entries(n, opts.seed)
                first = body(entries)
                server.bodies.clear()
                server.bodies["v0"] = first
                if n == opts.resync_size:
                    change_some(entries, 0.01)
                    server.bodies["v1pct"] = body(entries)
                del entries
                for kind in kinds:
                    first_sync = ("floor", "product") + (
                        () if opts.no_per_model else ("per_model",))
                    if n in sizes:
                        bench.measure(n, "first sync", first_sync, kind, "v0",
                                      raw_bytes=len(first))
                        if not opts.no_process:
                            bench.measure(n, "whole process", ("floor", "cli"), kind, "v0",
                                          raw_bytes=len(first), process=True)
                    if n == opts.resync_size:
                        bench.measure(n, "re-sync 0%", ("product",), kind, "v0", "v0",
                                      len(first))
                        bench.measure(n, "re-sync 1%", ("product",), kind, "v1pct", "v0",
                                      len(first))
                        if not opts.no_process:  # as an admin runs them: whole processes
                            bench.measure(n, "re-sync 0% process", ("cli",), kind, "v0", "v0",
                                          len(first), process=True)
                            bench.measure(n, "re-sync 1% process", ("cli",), kind, "v1pct",
                                          "v0", len(first), process=True)
                    if n == rtt_size and kind == "pg":
                        bench.measure(n, f"first @{opts.rtt_ms:g}ms RTT", first_sync, kind, "v0",
                                      raw_bytes=len(first), delayed=True)
            if opts.plan_size:
                runs = [
                    run_variant({"variant": "plan", "n": opts.plan_size, "seed": opts.seed})
                    for _ in range(opts.repeat)
                ]
                bench.results.append(
                    {
                        "n": opts.plan_size,
                        "scenario": "plan() alone",
                        "variant": "plan",
                        "db": "-",
                        "seconds": statistics.median(r["seconds"] for r in runs),
                        "runs": [round(r["seconds"], 3) for r in runs],
                        "statements": 0,
                        "round_trips": None,
                        "peak_rss_mb": max(r["peak_rss_kb"] for r in runs) / 1024,
                        "raw_json_mb": 0,
                        "detail": {
                            "plan_vs_empty": statistics.median(r["plan_vs_empty"] for r in runs),
                            "map_catalogue": statistics.median(r["map_catalogue"] for r in runs),
                        },
                    }
                )
    finally:
        for open_proxy in (proxy, delaying):
            if open_proxy is not None:
                open_proxy.close()
        dbs.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')} — {machine()}; {opts.repeat} runs per row; "
        f"took {time.time() - started:.0f} s"
    )
    print(table(bench.results))
    for r in bench.results:
        if r["scenario"] == "plan() alone":
            print(
                f"\nplan() for {r['n']:,} models: {r['seconds']:.3f} s against an identical "
                f"database, {r['detail']['plan_vs_empty']:.3f} s against an empty one "
                f"(map_catalogue: {r['detail']['map_catalogue']:.3f} s)"
            )
    for line in resync_ratios(bench.results):
        print(line)
    if opts.json:
        opts.json.write_text(orjson.dumps(bench.results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
