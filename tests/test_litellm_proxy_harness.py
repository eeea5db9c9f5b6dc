"""The test harness starts a real LiteLLM proxy, and the proxy behaves as LITELLM.md says.

These tests pin the facts the sync relies on, measured on litellm 1.108.7: what ``/model/info``
answers (one entry per deployment, in config order, wildcard routes expanded), how it
authenticates, and that a restart with a new config changes the catalogue. If the pinned
LiteLLM version changes, these are the tests that say what moved.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    from tests.litellm_proxy import DEAD_API_BASE, LiteLLMProxy, model
except ModuleNotFoundError:  # pytest run from elsewhere: the repo root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.litellm_proxy import DEAD_API_BASE, LiteLLMProxy, model

pytestmark = pytest.mark.integration

MASTER_KEY = "sk-harness-test-master-key"
FAKE_PROVIDER_KEY = "sk-fake-provider-key-must-never-show"

BASE_MODELS: list[dict[str, Any]] = [
    model("gpt-4o", "openai/gpt-4o", api_key=FAKE_PROVIDER_KEY),
    model("claude-sonnet", "anthropic/claude-sonnet-4-5", description="Anthropic, list price"),
    model(
        "local-granite",
        "hosted_vllm/ibm-granite/granite-3.3-8b-instruct",
        input_cost_per_token=0,
        output_cost_per_token=0,
        max_input_tokens=131072,
        supports_function_calling=True,
        description="self-hosted",
    ),
    # Load balancing: two deployments behind one public name.
    model("gpt-4o-mini", "openai/gpt-4o-mini", api_base=DEAD_API_BASE),
    model("gpt-4o-mini", "openai/gpt-4o-mini", api_base="http://127.0.0.1:19/v1"),
    # A wildcard route: LiteLLM accepts it, and /model/info expands it (see the test below).
    model("openai/*", "openai/*"),
]
CONCRETE_NAMES = ["gpt-4o", "claude-sonnet", "local-granite", "gpt-4o-mini", "gpt-4o-mini"]

CHANGED_MODELS: list[dict[str, Any]] = [
    model("gpt-4o", "openai/gpt-4o", api_key=FAKE_PROVIDER_KEY),
    model(
        "local-granite",
        "hosted_vllm/ibm-granite/granite-3.3-8b-instruct",
        input_cost_per_token=1e-07,
        output_cost_per_token=0,
        max_input_tokens=131072,
        supports_function_calling=True,
        description="self-hosted",
    ),
    model("mistral-small", "mistral/mistral-small-latest"),
]


@pytest.fixture(scope="session")
def harness_proxy() -> Iterator[LiteLLMProxy]:
    """One real proxy for this module's tests (installs LiteLLM on first use; never skips)."""
    with LiteLLMProxy() as proxy:
        proxy.start(BASE_MODELS, MASTER_KEY)
        yield proxy


@pytest.fixture
def proxy(harness_proxy: LiteLLMProxy) -> LiteLLMProxy:
    """The session proxy, serving ``BASE_MODELS`` (restored if a test restarted it)."""
    if harness_proxy.models != BASE_MODELS:
        harness_proxy.restart(BASE_MODELS, MASTER_KEY)
    return harness_proxy


def _info(proxy: LiteLLMProxy, headers: dict[str, str], path: str = "/model/info") -> Any:
    status, body = proxy.get(path, headers=headers)
    assert status == 200, body
    return body


def test_health_endpoints_need_no_key(proxy: LiteLLMProxy) -> None:
    assert proxy.get("/health/readiness")[0] == 200
    assert proxy.get("/health/liveliness") == (200, "I'm alive!")


def test_model_info_lists_deployments_in_config_order(proxy: LiteLLMProxy) -> None:
    data = _info(proxy, {"Authorization": f"Bearer {MASTER_KEY}"})["data"]
    concrete = data[: len(CONCRETE_NAMES)]
    assert [entry["model_name"] for entry in concrete] == CONCRETE_NAMES
    assert [entry["litellm_params"]["model"] for entry in concrete] == [
        m["litellm_params"]["model"] for m in BASE_MODELS[: len(CONCRETE_NAMES)]
    ]
    ids = [entry["model_info"]["id"] for entry in concrete]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 64 and int(i, 16) >= 0 for i in ids)
    for entry in data:
        assert set(entry) == {"model_name", "litellm_params", "model_info"}


def test_duplicate_model_name_gives_one_entry_per_deployment(proxy: LiteLLMProxy) -> None:
    data = _info(proxy, proxy.auth_headers)["data"]
    minis = [entry for entry in data if entry["model_name"] == "gpt-4o-mini"]
    assert len(minis) == 2
    assert minis[0]["model_info"]["id"] != minis[1]["model_info"]["id"]
    assert [m["litellm_params"]["api_base"] for m in minis] == [
        DEAD_API_BASE,
        "http://127.0.0.1:19/v1",
    ]


def test_wildcard_route_is_expanded_into_known_models(proxy: LiteLLMProxy) -> None:
    data = _info(proxy, proxy.auth_headers)["data"]
    expanded = data[len(CONCRETE_NAMES) :]
    # The "openai/*" entry itself never shows: one entry per OpenAI model of the cost map instead.
    assert not [entry for entry in data if "*" in entry["model_name"]]
    assert len(expanded) > 50
    wildcard_ids = {entry["model_info"]["id"] for entry in expanded}
    assert len(wildcard_ids) == 1  # all share the wildcard deployment's id
    assert all(entry["model_name"].startswith("openai/") for entry in expanded)
    assert all(entry["litellm_params"]["model"] == entry["model_name"] for entry in expanded)
    assert "openai/gpt-4o" in {entry["model_name"] for entry in expanded}

    # Asked by id, the deployment is the raw route.
    (wildcard_id,) = wildcard_ids
    single = _info(proxy, proxy.auth_headers, f"/model/info?litellm_model_id={wildcard_id}")
    assert [entry["model_name"] for entry in single["data"]] == ["openai/*"]
    assert single["data"][0]["model_info"]["input_cost_per_token"] is None


def test_model_info_by_id(proxy: LiteLLMProxy) -> None:
    first = proxy.model_info()[0]
    one = _info(
        proxy, proxy.auth_headers, f"/model/info?litellm_model_id={first['model_info']['id']}"
    )
    assert one["data"] == [first]
    status, _ = proxy.get("/model/info?litellm_model_id=" + "0" * 64, headers=proxy.auth_headers)
    assert status == 400


def test_both_key_headers_and_both_paths_answer_the_same(proxy: LiteLLMProxy) -> None:
    bearer = _info(proxy, {"Authorization": f"Bearer {MASTER_KEY}"})
    assert _info(proxy, {"x-litellm-api-key": MASTER_KEY}) == bearer
    assert _info(proxy, proxy.auth_headers, "/v1/model/info") == bearer


def test_authentication_errors(proxy: LiteLLMProxy) -> None:
    status, body = proxy.get("/model/info")
    assert status == 401
    assert body["error"]["type"] == "auth_error"
    assert "No api key passed in" in body["error"]["message"]

    # A wrong key, with no database behind the proxy, is a 400 "No connected db."
    status, body = proxy.get("/model/info", headers={"Authorization": "Bearer sk-wrong"})
    assert status == 400
    assert body["error"]["type"] == "no_db_connection"

    status, body = proxy.get("/model/info", headers={"Authorization": MASTER_KEY})
    assert status == 401
    assert "Malformed API Key" in body["error"]["message"]


def test_costs_description_and_credentials(proxy: LiteLLMProxy) -> None:
    status, raw = proxy.get("/model/info", headers=proxy.auth_headers)
    assert status == 200
    assert FAKE_PROVIDER_KEY not in json.dumps(raw)  # this version strips credentials
    by_name = {entry["model_name"]: entry for entry in raw["data"]}

    gpt4o = by_name["gpt-4o"]["model_info"]
    assert (gpt4o["max_tokens"], gpt4o["max_input_tokens"]) == (16384, 128000)
    assert gpt4o["input_cost_per_token"] == pytest.approx(2.5e-06)
    assert gpt4o["supports_vision"] is True
    assert gpt4o["pricing_overrides"] == []

    granite = by_name["local-granite"]["model_info"]
    assert granite["input_cost_per_token"] == 0
    assert granite["output_cost_per_token"] == 0
    assert sorted(granite["pricing_overrides"]) == ["input_cost_per_token", "output_cost_per_token"]
    assert granite["max_input_tokens"] == 131072
    assert granite["litellm_provider"] == "hosted_vllm"
    assert granite["description"] == "self-hosted"

    assert by_name["claude-sonnet"]["model_info"]["description"] == "Anthropic, list price"
    assert by_name["claude-sonnet"]["model_info"]["max_input_tokens"] == 200000


def test_restart_with_a_changed_config(harness_proxy: LiteLLMProxy) -> None:
    if harness_proxy.models != BASE_MODELS:
        harness_proxy.restart(BASE_MODELS)
    before = {e["model_name"]: e["model_info"]["id"] for e in harness_proxy.model_info()}
    old_url = harness_proxy.base_url

    harness_proxy.restart(CHANGED_MODELS)

    after = harness_proxy.model_info()
    assert [e["model_name"] for e in after] == ["gpt-4o", "local-granite", "mistral-small"]
    by_name = {e["model_name"]: e for e in after}
    assert by_name["local-granite"]["model_info"]["input_cost_per_token"] == pytest.approx(1e-07)
    assert by_name["mistral-small"]["model_info"]["litellm_provider"] == "mistral"
    # A deployment whose config did not change keeps its id across restarts; a changed one does not.
    assert by_name["gpt-4o"]["model_info"]["id"] == before["gpt-4o"]
    assert by_name["local-granite"]["model_info"]["id"] != before["local-granite"]
    assert harness_proxy.get("/model/info")[0] == 401  # still behind the same master key
    assert harness_proxy.base_url.startswith("http://127.0.0.1:")
    assert old_url.startswith("http://127.0.0.1:")
