"""Mapping rules of DESIGN.md, one test per rule, on the real LiteLLM fixture and edge cases."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_core.mapping import (
    SKIP_DATA_ERROR,
    SKIP_DUPLICATE,
    SKIP_WILDCARD,
    ModelDataError,
    map_catalogue,
    map_entry,
    parse_cost,
)
from tests.factories import entry, real_entries


def rows_by_id(entries):
    return map_catalogue(entries).rows


def test_real_fixture_maps_every_deployment():
    catalogue = map_catalogue(real_entries())
    assert set(catalogue.rows) == {
        "gpt-4o",
        "claude-sonnet",
        "azure-gpt-4o-mini",
        "local-llama",
        "compat-mistral",
        "bedrock-claude",
        "gemini-flash",
        "text-embedding-3-small",
    }
    assert catalogue.skips == ()
    assert catalogue.entry_count == 8


def test_context_length_prefers_max_input_tokens():
    rows = rows_by_id(real_entries())
    assert rows["gpt-4o"].context_length == 128000  # not max_tokens 16384
    row = map_entry(entry("m", max_input_tokens=None, max_tokens=4096))
    assert row.context_length == 4096


def test_zero_is_a_price_and_none_falls_back_to_params():
    rows = rows_by_id(real_entries())
    assert rows["local-llama"].input_cost_per_token == Decimal("0")
    assert rows["text-embedding-3-small"].output_cost_per_token == Decimal("0")
    assert rows["compat-mistral"].input_cost_per_token is None
    row = map_entry(entry("m", input_cost_per_token=None, params={"input_cost_per_token": 0.5e-6}))
    assert row.input_cost_per_token == Decimal("0.0000005")
    row = map_entry(entry("m", input_cost_per_token=0, params={"input_cost_per_token": 9e-6}))
    assert row.input_cost_per_token == Decimal("0")


def test_costs_are_exact_decimals_of_ten_places():
    row = map_entry(entry("m", input_cost_per_token=2.5e-06, output_cost_per_token="0.00001"))
    assert row.input_cost_per_token == Decimal("0.0000025000")
    assert row.output_cost_per_token == Decimal("0.00001")
    assert row.input_cost_per_token.as_tuple().exponent == -10


@pytest.mark.parametrize(
    ("params", "info", "expected"),
    [
        ({"model": "openai/gpt-4o", "custom_llm_provider": "azure"}, {}, "azure"),
        ({"model": "bedrock/anthropic.claude"}, {"litellm_provider": "x"}, "bedrock"),
        ({"model": "gpt-4o"}, {"litellm_provider": "openai"}, "openai"),
        ({"model": "gpt-4o"}, {}, "unknown"),
        ({"model": "hosted_vllm/meta-llama/Llama-3.1-8B"}, {}, "hosted_vllm"),
    ],
)
def test_provider_rule(params, info, expected):
    item = {"model_name": "m", "litellm_params": params, "model_info": info}
    assert map_entry(item).provider == expected


def test_features_in_fixed_order_and_flags_default_false():
    rows = rows_by_id(real_entries())
    assert rows["gpt-4o"].features == (
        "function_calling",
        "parallel_function_calling",
        "vision",
        "chat",
    )
    assert rows["claude-sonnet"].features == ("function_calling", "vision", "chat")
    assert rows["compat-mistral"].features == ("chat",)
    assert rows["compat-mistral"].supports_vision is False
    assert rows["compat-mistral"].supports_streaming is True
    assert all(r.availability == "available" for r in rows.values())


def test_description_comes_from_model_info():
    rows = rows_by_id(real_entries())
    assert rows["claude-sonnet"].description == "anthropic, custom pricing"
    assert rows["gpt-4o"].description is None


def test_wildcards_are_skipped_and_reported():
    catalogue = map_catalogue([entry("openai/*"), entry("a")])
    assert set(catalogue.rows) == {"a"}
    assert [(s.model_id, s.kind) for s in catalogue.skips] == [("openai/*", SKIP_WILDCARD)]


def test_duplicates_collapse_deterministically_whatever_the_order():
    first = entry(
        "gpt", deployment_id="bbb", input_cost_per_token=1e-6, params={"api_base": "http://b"}
    )
    second = entry(
        "gpt", deployment_id="aaa", input_cost_per_token=3e-6, params={"api_base": "http://a"}
    )
    one = map_catalogue([first, second])
    other = map_catalogue([second, first])
    assert one.rows == other.rows
    assert one.rows["gpt"].metadata_json == other.rows["gpt"].metadata_json
    assert one.rows["gpt"].input_cost_per_token == Decimal("0.000003")  # deployment "aaa" wins
    assert [(s.kind, s.deployment_id) for s in one.skips] == [(SKIP_DUPLICATE, "bbb")]


def test_duplicate_with_a_bad_first_deployment_falls_back_to_a_good_one():
    bad = entry("gpt", deployment_id="aaa", input_cost_per_token="lots")
    good = entry("gpt", deployment_id="bbb")
    catalogue = map_catalogue([bad, good])
    assert "gpt" in catalogue.rows
    assert catalogue.errors == ()


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (entry("x" * 256), "255"),
        (entry("m", input_cost_per_token=100), "overflows"),
        (entry("m", output_cost_per_token=1e30), "overflows"),
        (entry("m", input_cost_per_token=-1e-6), "negative"),
        (entry("m", input_cost_per_token=float("nan")), "finite"),
        (entry("m", input_cost_per_token=float("inf")), "finite"),
        (entry("m", input_cost_per_token=True), "number"),
        (entry("m", input_cost_per_token="cheap"), "number"),
        (entry("m", max_input_tokens=2**31), "INTEGER"),
        (entry("m", max_input_tokens="big"), "integer"),
        (entry("m", supports_vision="maybe"), "true or false"),
        (entry("m\x00"), "NUL"),
        (entry("m", params={"model": "p" * 101 + "/x"}), "provider"),
        ({"model_name": "m", "litellm_params": [], "model_info": {}}, "JSON objects"),
    ],
)
def test_values_a_column_cannot_hold_are_data_errors_of_that_model_only(item, message):
    catalogue = map_catalogue([item, entry("fine")])
    assert set(catalogue.rows) == {"fine"}
    (error,) = catalogue.errors
    assert error.kind == SKIP_DATA_ERROR
    assert message in error.reason


def test_entries_without_a_name_are_reported():
    catalogue = map_catalogue([{"litellm_params": {}}, "not an object", entry("ok")])
    assert set(catalogue.rows) == {"ok"}
    assert len(catalogue.errors) == 2


def test_credentials_never_reach_metadata():
    params = {
        "api_key": "sk-SECRET1",
        "aws_secret_access_key": "SECRET2",
        "aws_access_key_id": "SECRET3",
        "vertex_credentials": "SECRET4",
        "azure_ad_token": "SECRET5",
        "client_secret": "SECRET6",
        "api_base": "https://user:SECRET7@host.example/v1",
        "extra_headers": {"Authorization": "Bearer SECRET8"},
    }
    row = map_entry(entry("m", params=params, aws_session_token="SECRET9"))
    dumped = row.metadata_json.decode()
    for n in range(1, 10):
        assert f"SECRET{n}" not in dumped
    assert row.metadata["litellm_params"]["api_base"] == "https://host.example/v1"
    # numeric *_token keys are prices, not tokens, and stay
    assert row.metadata["litellm_model_info"]["input_cost_per_token"] == 1e-06


def test_metadata_drops_nulls_and_keeps_model_info_and_params():
    row = rows_by_id(real_entries())["compat-mistral"]
    info = row.metadata["litellm_model_info"]
    assert None not in info.values()
    assert info["id"] == "9f527611c1f1334f3ce8a2ac599aa6aaae5681f691da4e4de51d4c39c6ac8528"
    assert row.metadata["litellm_params"]["model"] == "openai/mistral-7b-instruct"


def test_hostile_but_storable_names_are_kept_verbatim():
    names = [
        "o'reilly\"; DROP TABLE models; --",
        "模型-ünïcødé-🚀",
        "<b>bold</b> [x](http://e)",
        "tab\there",
    ]
    catalogue = map_catalogue([entry(n) for n in names])
    assert set(catalogue.rows) == set(names)


def test_wildcard_expansions_sharing_one_deployment_id_are_skipped():
    """LiteLLM 1.108.7 expands ``openai/*`` into one entry per cost-map model, one shared id."""
    expanded = [
        entry(f"openai/{m}", f"openai/{m}", deployment_id="wild") for m in ("gpt-4", "tts-1")
    ]
    catalogue = map_catalogue(expanded + [entry("real", deployment_id="own")])
    assert set(catalogue.rows) == {"real"}
    assert [s.kind for s in catalogue.skips] == [SKIP_WILDCARD, SKIP_WILDCARD]
    assert "wildcard" in catalogue.skips[0].reason


def test_credentials_under_provider_specific_names_and_in_urls_are_stripped():
    params = {
        "api_base": "https://generativelanguage.example/v1?key=AIzaSECRET1&alt=sse",
        "extra_headers": {"api-key": "SECRET2", "x-goog-api-key": "SECRET3",
                          "Ocp-Apim-Subscription-Key": "SECRET4", "apikey": "SECRET5"},
        "vertex_credentials": {"private_key": "SECRET6"},
    }
    row = map_entry(entry("m", params=params, access_token="SECRET7"))
    dumped = row.metadata_json.decode()
    for n in range(1, 8):
        assert f"SECRET{n}" not in dumped
    assert row.metadata["litellm_params"]["api_base"] == "https://generativelanguage.example/v1?alt=sse"
    assert row.metadata["litellm_model_info"]["max_tokens"] == 4096  # not a credential


def test_a_url_without_a_scheme_loses_its_credentials_too():
    params = {"api_base": "//user:SECRET1@host.example/v1?key=SECRET2&alt=sse",
              "fallbacks": ["//u:SECRET3@other.example"]}
    row = map_entry(entry("m", params=params))
    assert "SECRET" not in row.metadata_json.decode()
    assert row.metadata["litellm_params"]["api_base"] == "//host.example/v1?alt=sse"
    assert row.metadata["litellm_params"]["fallbacks"] == ["//other.example"]


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True) | st.floats(0, 100))
def test_a_float_price_is_judged_as_its_decimal_text_would_be(value):
    """The float fast path of parse_cost gives exactly what the general path gives."""
    def outcome(raw):
        try:
            return parse_cost(raw, "input_cost_per_token")
        except ModelDataError as exc:
            return str(exc).split("=")[0].split(" ")[0]  # the field, whatever the wording

    fast, general = outcome(value), outcome(repr(value))
    assert fast == general
    if isinstance(fast, Decimal):
        assert str(fast) == str(general)  # the same exponent and sign, not only equal
        again = outcome(value)  # (remembered now: the same decimal, to the digit)
        assert str(again) == str(general)


def test_remembered_prices_are_bounded_and_zero_has_no_sign(monkeypatch):
    from sync_core import mapping

    monkeypatch.setattr(mapping, "_FLOAT_COSTS", {})  # (the module's own stays as it was)
    assert str(parse_cost(-0.0, "p")) == str(parse_cost(0.0, "p")) == "0E-10"
    assert str(parse_cost(-0.0, "p")) == "0E-10"
    for i in range(mapping._REMEMBERED_COSTS + 100):
        parse_cost(i * 1e-9, "p")
    assert 0 < len(mapping._FLOAT_COSTS) <= mapping._REMEMBERED_COSTS
    # emptied when full: the newest prices are remembered, the oldest forgotten
    assert (mapping._REMEMBERED_COSTS + 99) * 1e-9 in mapping._FLOAT_COSTS
    assert 99 * 1e-9 not in mapping._FLOAT_COSTS
    assert parse_cost((mapping._REMEMBERED_COSTS + 50) * 1e-9, "p") == Decimal("0.0000655860")


def test_anything_but_a_number_under_a_token_name_is_taken_for_a_token():
    """``*_token`` names hold prices (numbers) in LiteLLM's data; text, or a list or object that
    may wrap a token, never reaches the database."""
    from sync_core import redact

    info = {"access_token": ["sk-live-1"], "token": {"value": "sk-2"}, "x_token": {"v": "s"},
            "id_token": "sk-3", "input_cost_per_token": 1e-6, "use_token": True,
            "max_tokens": 8}
    assert redact.clean_metadata(info) == {"input_cost_per_token": 1e-6, "use_token": True,
                                           "max_tokens": 8}
    row = map_entry(entry("m", params={"extra_headers": {"x_token": ["sk-4"]}}))
    assert "sk-4" not in row.metadata_json.decode()


def test_features_for_any_flags_match_the_rule():
    """The table of the eight true/false answers gives what the rule gives, and other values
    (0/1, None from a database row) are still judged by truth."""
    import itertools

    from sync_core import mapping

    for flags in itertools.product((False, True, 0, 1, None), repeat=3):
        named = zip(mapping.FEATURE_ORDER, flags, strict=True)
        expected = tuple(name for name, on in named if on) + ("chat",)
        assert mapping.features_for(*flags) == expected


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.sampled_from(["plain", "https://u:p@h/x?key=k&a=1", "http://h/x", "s3://b/k?sig=z",
                       "//u:p@h/x", "a // b?token=t"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["api_key", "input_cost_per_token", "name", "api_base", "aws_secret_x",
                         "token", "x"]), inner, max_size=5),
    max_leaves=20)


def _reference_clean(value):
    """clean_metadata as its docstring states it, spelled the plain way."""
    from sync_core import redact

    if isinstance(value, dict):
        return {str(k): _reference_clean(v) for k, v in value.items()
                if v is not None and not redact.is_credential_key(str(k), v)}
    if isinstance(value, list):
        return [_reference_clean(v) for v in value]
    if isinstance(value, str):
        return redact.strip_url_secrets(value) if "//" in value else value
    if type(value) is float:
        return redact.as_jsonb_gives_back(value)
    return value


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["api_key", "name", "model_info", "token", "n"]), _JSON))
def test_clean_metadata_is_the_plain_rule(value):
    from sync_core import redact

    assert redact.clean_metadata(value) == _reference_clean(value)


def test_credential_names_are_dropped_beyond_the_remembered_names():
    from sync_core import redact

    info = {f"x{i}_api_key": "sk-secret" for i in range(redact._REMEMBERED + 500)}
    info["plain"] = "kept"
    assert redact.clean_metadata(info) == {"plain": "kept"}
    assert len(redact._DROPS_TEXT) <= redact._REMEMBERED
