"""Credentials never reach the database, a log, a page or an error.

LiteLLM 1.108 strips provider keys from ``/model/info``, but older or patched proxies may not,
and config authors put keys in odd places (headers, URLs). Everything stored as model metadata
passes through :func:`clean_metadata` first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

#: Key names (normalised: lower case, ``-`` → ``_``) that hold a credential.
_CREDENTIAL_NAME = re.compile(
    r"(^|_)(api_?key|apikey|access_?key|private_?key|master_?key|subscription_?key|secret|"
    r"password|passwd|token|credentials?|authorization|signature|sig)$"
)
_AWS_KEY = re.compile(r"^aws_.*_key")
#: URL query parameters that carry credentials (Gemini's ``?key=``, SAS signatures, ...).
_SECRET_QUERY = frozenset({"key", "api_key", "apikey", "token", "access_token", "sig",
                           "signature", "code", "password", "secret"})


def is_credential_key(key: str, value: Any) -> bool:
    """Whether a params/model_info key holds a credential that must never be stored or shown."""
    name = key.lower().replace("-", "_")
    if "secret" in name or "password" in name or "credential" in name or _AWS_KEY.match(name):
        return True
    if name.endswith("_token") or name == "token":
        # ``input_cost_per_token`` is a price: a number (or a flag) under such a name is kept;
        # text, or a list or object that may wrap one, is taken for a token.
        return not isinstance(value, int | float)
    return bool(_CREDENTIAL_NAME.search(name))


def strip_url_secrets(value: str) -> str:
    """A URL without ``user:password@`` and without credential query parameters."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return value
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        netloc = (parts.hostname or "") + (f":{port}" if port else "")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if k.lower() not in _SECRET_QUERY]
        if len(kept) != len(pairs):
            query = urlencode(kept)
    if netloc == parts.netloc and query == parts.query:
        return value
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


#: ``is_credential_key`` remembered per key name, for numbers and flags and for everything else
#: (text, lists, objects: what may hold a token under a ``*_token`` name): a catalogue
#: repeats ~200 names 10,000 times (plain dicts: cheaper to ask than a cache wrapper).
_DROPS_TEXT: dict[str, bool] = {}
_DROPS_OTHER: dict[str, bool] = {}
_REMEMBERED = 8192  # names beyond this are judged every time (a hostile catalogue's made-up keys)


def _drops(key: str, text_value: bool) -> bool:
    verdicts = _DROPS_TEXT if text_value else _DROPS_OTHER
    verdict = verdicts.get(key)
    if verdict is None:
        verdict = is_credential_key(key, "" if text_value else 0)
        if len(verdicts) < _REMEMBERED:
            verdicts[key] = verdict
    return verdict


def _clean_text(value: str) -> str:
    # ``//`` as well as ``://``: a scheme-less URL (``//user:pass@host``) carries them too
    return strip_url_secrets(value) if "//" in value and ("@" in value or "?" in value) else value


def as_jsonb_gives_back(value: float) -> float | int:
    """A float as PostgreSQL's JSONB stores it and orjson reads it back: no -0.0, and from
    1e16 on (where orjson writes ``1e+16``) JSONB prints the integer those digits spell, read
    back as an int while it fits in 64 bits. Stored metadata must read back as it was mapped,
    or every sync would rewrite the row (and a re-sync could not trust what it wrote)."""
    if value == 0.0:
        return 0.0
    if (value >= 1e16 or value <= -1e16) and math.isfinite(value):
        # the digits orjson prints (9.223372036854776e18 for 2**63), which is what JSONB keeps
        whole = int(Decimal(orjson.dumps(value).decode()))
        if -(2**63) <= whole < 2**64:
            return whole
    return value


def clean_metadata(value: Any) -> Any:
    """Drop null-valued keys and credentials, recursively; strip secrets from URLs.

    Dispatches on exact types (JSON gives dict, list, str, int, float, bool): this runs over
    every value of every entry, so it is the mapping's hot loop.
    """
    kind = type(value)
    if kind is dict:
        cleaned = {}
        text_drops, other_drops = _DROPS_TEXT, _DROPS_OTHER
        for key, item in value.items():
            if item is None:
                continue
            item_kind = type(item)
            if type(key) is not str:
                key = str(key)
            if item_kind is str:  # (by how often they come: text, flags and counts, prices)
                verdict = text_drops.get(key)
                if verdict is None:
                    verdict = _drops(key, True)
                if not verdict:
                    cleaned[key] = item if "//" not in item else _clean_text(item)
                continue
            scalar = item_kind is bool or item_kind is int or item_kind is float
            verdict = (other_drops if scalar else text_drops).get(key)
            if verdict is None:
                verdict = _drops(key, not scalar)
            if verdict:
                continue
            if item_kind is bool or item_kind is int:
                cleaned[key] = item
            elif item_kind is float:
                cleaned[key] = (as_jsonb_gives_back(item)
                                if item == 0.0 or item >= 1e16 or item <= -1e16 else item)
            else:
                cleaned[key] = clean_metadata(item)
        return cleaned
    if kind is list:  # mostly lists of plain strings (supported_openai_params): inline them
        return [
            item if type(item) is str and "//" not in item else clean_metadata(item)
            for item in value
        ]
    if kind is str:
        return _clean_text(value)
    if kind is float and (value == 0.0 or value >= 1e16 or value <= -1e16):
        return as_jsonb_gives_back(value)
    if isinstance(value, Mapping):  # not from JSON, but accept any mapping
        return clean_metadata(dict(value))
    return value
