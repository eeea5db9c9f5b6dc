"""The README stays true: configuration table, commands, and the claims about the demo data."""

from __future__ import annotations

from pathlib import Path

from sync_core.config import SETTINGS, settings_markdown_table
from sync_core.mapping import map_catalogue
from sync_core.mock_litellm import MockLiteLLMClient
from sync_core.plan import build_plan

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_configuration_table_is_generated_from_the_settings():
    assert settings_markdown_table() in README
    for spec in SETTINGS:
        assert f"`{spec.env}`" in README


def test_readme_commands_exist_and_ci_runs_the_test_command():
    assert "./scripts/run" in README and "./scripts/test" in README
    assert (ROOT / "scripts" / "run").exists() and (ROOT / "scripts" / "test").exists()
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_the_benchmark_command_sets_up_and_runs_the_benchmarks():
    """docs/PERFORMANCE.md's command: ``scripts/bench`` (set-up, then ``benchmarks.run``, or the
    benchmark named first)."""
    import subprocess

    assert "./scripts/bench" in (ROOT / "docs" / "PERFORMANCE.md").read_text()
    assert "./scripts/bench" in README
    for args, says in ((["--help"], "--sizes"), (["phases", "--help"], "Where a sync's time")):
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "bench"), *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stderr
        assert says in proc.stdout


def test_readme_demo_figures_match_the_bundled_catalogue():
    current = map_catalogue(MockLiteLLMClient().fetch_entries())
    previous = map_catalogue(MockLiteLLMClient("previous").fetch_entries())
    providers = {row.provider for row in current.rows.values()}
    assert f"{len(current.rows)} models across {len(providers)} providers" in README
    summary = build_plan(current, dict(previous.rows)).summary
    assert (
        f"{summary['insert']} new models, {summary['update']} changed, "
        f"{summary['mark_unavailable']} to mark unavailable"
    ) in README
