"""Hostile catalogue input, on PostgreSQL and SQLite: every hostile entry is either stored
verbatim or reported as a per-model data error; the sync as a whole never fails and the
well-formed models beside it always land.

(How names and descriptions render on the pages is the dashboard's part; here they must come
back from the database byte for byte.)
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from sync_core.access import Actor
from sync_core.litellm import LiteLLMClient
from sync_core.sync import SyncService
from tests import fake_litellm as fl
from tests.factories import entry, real_entries
from tests.reliability.helpers import lock_is_free, make_engine

ADMIN = Actor("hostile@example.com", "admin")
STORED, ERROR = "stored", "error"


def nested(depth: int) -> dict:
    value: dict = {"leaf": True}
    for _ in range(depth):
        value = {"n": value}
    return value


def _e(name, **info):
    params = info.pop("params", None)
    return entry(name, params=params, **info)


# (id, entry, expected fate)
HOSTILE = [
    ("single-quote", _e("it's-a-model"), STORED),
    ("double-quote-backslash", _e('say "hi" \\ back\\slash'), STORED),
    ("sql-injection-name", _e("x'); DROP TABLE models; --"), STORED),
    (
        "sql-injection-description",
        _e("sqli-desc", description="'; DELETE FROM audit_logs; --"),
        STORED,
    ),
    ("json-path-name", _e("$.id')) OR 1=1 --"), STORED),
    ("unicode", _e("模型-🚀-ñ-Ωμέγα"), STORED),
    ("rtl-override-zero-width", _e("evil\u202etxt.exe\u200b\ufeff"), STORED),
    ("control-characters", _e("tab\there\nnewline\rcr\x01\x1b[31mred"), STORED),
    ("name-255", _e("n" * 255), STORED),
    ("html-name", _e("<script>alert('name')</script>"), STORED),
    (
        "html-description",
        _e("html-desc", description='<img src=x onerror="alert(1)"><b>x</b>'),
        STORED,
    ),
    (
        "markdown-description",
        _e(
            "md-desc",
            description="[click](javascript:alert(1)) "
            "![px](http://evil.example/p.png) **bold** <u>u</u>",
        ),
        STORED,
    ),
    ("description-10k", _e("long-desc", description="d" * 10_000), STORED),
    ("zero-price", _e("free-model", input_cost_per_token=0, output_cost_per_token=0.0), STORED),
    ("negative-zero-price", _e("neg-zero", input_cost_per_token=-0.0), STORED),
    ("nested-100", _e("nested-100", extra=nested(100)), STORED),
    ("float-1e20-in-metadata", _e("f-1e20", extra=1e20), STORED),
    ("float-1e-30-in-metadata", _e("f-1e-30", extra=1e-30), STORED),
    ("float-1.5e300-in-metadata", _e("f-1e300", extra=1.5e300), STORED),
    ("odd-metadata-keys", _e("odd-keys", extra={"": 1, "a'b": 2, "$.x": 3, "k\nv": 4}), STORED),
    ("name-10k", _e("x" * 10_000), ERROR),
    ("name-256", _e("n" * 256), ERROR),
    ("nul-in-name", _e("nul\x00name"), ERROR),
    ("nul-in-description", _e("nul-desc", description="a\x00b"), ERROR),
    ("nul-in-metadata", _e("nul-meta", extra={"x": "a\x00b"}), ERROR),
    ("nan-price", _e("nan-price", input_cost_per_token=float("nan")), ERROR),
    ("infinity-price", _e("inf-price", output_cost_per_token=float("inf")), ERROR),
    ("minus-infinity-price", _e("minf-price", input_cost_per_token=float("-inf")), ERROR),
    ("negative-price", _e("neg-price", input_cost_per_token=-1e-06), ERROR),
    ("huge-float-price", _e("huge-price", input_cost_per_token=1e300), ERROR),
    ("huge-int-price", _e("huge-int-price", input_cost_per_token=10**30), ERROR),
    ("price-100", _e("price-100", input_cost_per_token=100), ERROR),
    ("price-string", _e("str-price", input_cost_per_token="cheap"), ERROR),
    ("price-list", _e("list-price", input_cost_per_token=[1]), ERROR),
    ("price-bool", _e("bool-price", input_cost_per_token=True), ERROR),
    ("context-huge", _e("ctx-huge", max_input_tokens=10**12), ERROR),
    ("context-string", _e("ctx-str", max_input_tokens="128k"), ERROR),
    ("context-negative", _e("ctx-neg", max_input_tokens=-5), ERROR),
    ("context-fraction", _e("ctx-frac", max_input_tokens=1.5), ERROR),
    ("flag-string", _e("flag-str", supports_vision="yes"), ERROR),
    ("provider-101", _e("prov-101", params={"custom_llm_provider": "p" * 101}), ERROR),
    ("nested-300", _e("nested-300", extra=nested(300)), ERROR),
    ("nested-5000", _e("nested-5000", extra=nested(5000)), ERROR),
    ("huge-int-in-metadata", _e("bigint-meta", extra=10**30), ERROR),
    ("lone-surrogate-name", _e("sur\ud800rogate"), ERROR),
    ("lone-surrogate-description", _e("sur-desc", description="bad \udfff text"), ERROR),
    (
        "model-info-list",
        {"model_name": "info-list", "model_info": [1], "litellm_params": {}},
        ERROR,
    ),
    ("model-name-number", {"model_name": 12345, "model_info": {}}, ERROR),
    ("entry-null", None, ERROR),
    ("entry-string", "model", ERROR),
]


class ListSource:
    mode = "test"
    model_info_url = "test://hostile"

    def __init__(self, entries):
        self.entries = entries

    def fetch_entries(self):
        return list(self.entries)

    cached_entries = fetch_entries

    def clear_cache(self):
        return None


def _stored(engine, model_id):
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT name, description FROM models WHERE id = :i"), {"i": model_id}
        ).first()


@pytest.mark.parametrize(("hostile", "fate"), [pytest.param(h[1], h[2], id=h[0]) for h in HOSTILE])
def test_hostile_entry_is_isolated(db_url, hostile, fate):
    engine = make_engine(db_url)
    good = real_entries()
    service = SyncService(engine, ListSource(good[:3] + [hostile] + good[3:]))
    result = service.run(trigger="manual", actor=ADMIN)
    assert result.success, result.error_message
    with engine.connect() as conn:
        ids = {r[0] for r in conn.execute(sa.text("SELECT id FROM models"))}
    assert {e["model_name"] for e in good} <= ids  # the rest always syncs
    name = hostile.get("model_name") if isinstance(hostile, dict) else None
    if fate == STORED:
        assert not result.errors, result.errors
        row = _stored(engine, name)
        assert row is not None and row.name == name  # byte for byte
        assert row.description == hostile["model_info"].get("description")
        again = service.run(trigger="manual", actor=ADMIN)  # and it is stable
        assert again.success and again.new_models == again.updated_models == 0
    else:
        assert len(result.errors) == 1, result.errors
        assert ids == {e["model_name"] for e in good}
    assert lock_is_free(engine, wait=0)
    engine.dispose()


RAW_BODIES = [
    (
        "nan-infinity-literals",
        b'{"data": [%s, {"model_name": "nan", "model_info": '
        b'{"input_cost_per_token": NaN, "output_cost_per_token": Infinity}}, {"model_name": "minf",'
        b' "model_info": {"input_cost_per_token": -Infinity}}]}',
        2,
    ),
    (
        "huge-numbers",
        b'{"data": [%s, {"model_name": "big", "model_info": {"input_cost_per_token":'
        b' 1e400, "max_input_tokens": 123456789012345678901234567890}}]}',
        1,
    ),
    ("escaped-lone-surrogate", b'{"data": [%s, {"model_name": "s\\ud800", "model_info": {}}]}', 1),
    ("escaped-nul", b'{"data": [%s, {"model_name": "n\\u0000ul", "model_info": {}}]}', 1),
    (
        "nested-900",
        b'{"data": [%s, {"model_name": "deep", "model_info": {"x": '
        + b'{"n": ' * 900
        + b"1"
        + b"}" * 900
        + b"}}]}",
        1,
    ),
]


@pytest.mark.parametrize(
    ("body", "errors"), [pytest.param(b[1], b[2], id=b[0]) for b in RAW_BODIES]
)
def test_hostile_json_from_the_wire(db_url, body, errors):
    """Hostile JSON text through the real HTTP client: bad entries isolated, the rest synced."""
    engine = make_engine(db_url)
    good = json.dumps(real_entries()[0]).encode()
    with fl.FakeLiteLLM(key=None, body=body % good) as fake:
        result = SyncService(engine, LiteLLMClient(fake.url, timeout=5)).run(
            trigger="manual", actor=ADMIN
        )
    assert result.success, result.error_message
    assert result.new_models == 1 and len(result.errors) == errors, result.errors
    engine.dispose()


def test_deeper_than_any_parser_is_one_clean_failure(db_url):
    """JSON nested 100,000 deep cannot be parsed at all: the answer is refused as a whole with
    a data error, nothing is written, the failure is audited."""
    engine = make_engine(db_url)
    body = (
        b'{"data": [{"model_name": "deep", "model_info": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}]}"
    )
    with fl.FakeLiteLLM(key=None, body=body) as fake:
        result = SyncService(engine, LiteLLMClient(fake.url, timeout=5)).run(
            trigger="manual", actor=ADMIN
        )
    assert not result.success and result.error_kind == "data"
    assert "invalid JSON" in result.error_message
    engine.dispose()
