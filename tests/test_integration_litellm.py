"""End to end against a real LiteLLM proxy (pinned 1.108.7) and a real PostgreSQL, via the CLI.

An awkward catalogue (duplicates, a wildcard, zero prices, a model missing from LiteLLM's cost
map, an overlong name, a cost that overflows the column, a provider key in the params) is
synced with ``litemaas-sync migrate && litemaas-sync sync --json``; then LiteLLM restarts with
a changed config (a model removed, a price changed, a model added) and the diff and the next
sync are checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from tests.litellm_proxy import LiteLLMProxy, model

pytestmark = pytest.mark.integration

MASTER_KEY = "sk-integration-master-key-4f1d"
PROVIDER_KEY = "sk-provider-key-never-stored-91ab"
LONG_NAME = "l" * 300

BASE = [
    model("gpt-4o", "openai/gpt-4o", api_key=PROVIDER_KEY),
    model("claude-sonnet", "anthropic/claude-sonnet-4-5", description="Anthropic, list price"),
    model(
        "local-granite",
        "hosted_vllm/ibm-granite/granite-3.3-8b-instruct",
        input_cost_per_token=0,
        output_cost_per_token=0,
        max_input_tokens=131072,
    ),
    model("retired-model", "openai/my-finetune-not-in-cost-map"),
    model("gpt-4o-mini", "openai/gpt-4o-mini", api_base="http://127.0.0.1:9/v1"),
    model("gpt-4o-mini", "openai/gpt-4o-mini", api_base="http://127.0.0.1:19/v1"),
    model("openai/*", "openai/*"),
    model(LONG_NAME, "openai/gpt-4o"),
    model("overflowing", "openai/gpt-4o", input_cost_per_token=1000),
]
CHANGED = [m for m in BASE if m["model_name"] != "claude-sonnet"]
CHANGED = [
    model(
        "local-granite",
        "hosted_vllm/ibm-granite/granite-3.3-8b-instruct",
        input_cost_per_token=1e-07,
        output_cost_per_token=0,
        max_input_tokens=131072,
    )
    if m["model_name"] == "local-granite"
    else m
    for m in CHANGED
] + [model("mistral-small", "mistral/mistral-small-latest")]


@pytest.fixture(scope="module")
def litellm() -> Iterator[LiteLLMProxy]:
    with LiteLLMProxy() as proxy:
        proxy.start(BASE, MASTER_KEY)
        yield proxy


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sync_core", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def stored(url: str) -> dict[str, dict]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute("SELECT * FROM models")
        return {r["id"]: r for r in cur.fetchall()}


def test_sync_from_a_real_litellm_then_follow_its_changes(litellm, empty_pg_url):
    env = {
        **os.environ,
        "LITELLM_API_URL": litellm.base_url,
        "LITELLM_API_KEY": MASTER_KEY,
        "DATABASE_URL": empty_pg_url,
        "NODE_ENV": "production",
    }
    assert cli(["migrate"], env).returncode == 0
    first = cli(["sync", "--json"], env)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["success"] is True
    rows = stored(empty_pg_url)
    assert set(rows) == {"gpt-4o", "claude-sonnet", "local-granite", "retired-model", "gpt-4o-mini"}
    assert result["newModels"] == 5
    assert len(result["errors"]) == 2  # the overlong name and the overflowing cost
    assert rows["gpt-4o"]["context_length"] == 128000
    assert rows["local-granite"]["input_cost_per_token"] == Decimal("0")
    assert rows["retired-model"]["input_cost_per_token"] is None
    assert rows["claude-sonnet"]["description"] == "Anthropic, list price"
    everything = json.dumps({k: {c: str(v) for c, v in r.items()} for k, r in rows.items()})
    assert PROVIDER_KEY not in everything and MASTER_KEY not in everything
    for text in (first.stdout, first.stderr):
        assert PROVIDER_KEY not in text and MASTER_KEY not in text

    in_sync = cli(["diff", "--json"], env)
    assert in_sync.returncode == 0, in_sync.stdout
    assert json.loads(in_sync.stdout)["summary"]["insert"] == 0

    litellm.restart(CHANGED, MASTER_KEY)
    env["LITELLM_API_URL"] = litellm.base_url  # a restart may pick another port
    pending = cli(["diff", "--json"], env)
    assert pending.returncode == 2
    plan = json.loads(pending.stdout)
    actions = {a["model_id"]: a for a in plan["actions"]}
    assert actions["claude-sonnet"]["action"] == "mark_unavailable"
    assert actions["mistral-small"]["action"] == "insert"
    assert actions["local-granite"]["action"] == "update"
    assert actions["local-granite"]["changes"]["input_cost_per_token"] == {
        "old": "0",
        "new": "0.0000001",
    }

    kept = cli(["sync", "--json", "--no-mark-unavailable"], env)
    assert kept.returncode == 0
    assert stored(empty_pg_url)["claude-sonnet"]["availability"] == "available"
    synced = json.loads(cli(["sync", "--json"], env).stdout)
    assert synced["unavailableModels"] == 1
    rows = stored(empty_pg_url)
    assert rows["claude-sonnet"]["availability"] == "unavailable"
    assert rows["mistral-small"]["availability"] == "available"
    assert rows["local-granite"]["input_cost_per_token"] == Decimal("0.0000001")
    assert cli(["diff"], env).returncode == 0
