"""Mock mode: the bundled catalogue served through the client's interface, without a network.

Used when no LiteLLM URL is configured in development (never in production, never silently
when a URL is set). ``snapshot="previous"`` serves an older copy, which demo mode seeds the
database with so a first visit has a real diff to review.
"""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from typing import Any

from .breaker import CLOSED
from .litellm import ProbeResult, parse_catalogue

SNAPSHOTS = {
    "current": "mock_model_info.json",
    "previous": "mock_model_info_previous.json",
}


@cache
def _load(snapshot: str) -> tuple[Any, ...]:
    body = resources.files("sync_core.data").joinpath(SNAPSHOTS[snapshot]).read_bytes()
    return tuple(parse_catalogue(body, f"mock:{SNAPSHOTS[snapshot]}"))


class MockLiteLLMClient:
    mode = "mock"
    base_url = "mock://bundled-catalogue"
    model_info_url = base_url + "/model/info"
    last_attempts = 0

    def __init__(self, snapshot: str = "current"):
        if snapshot not in SNAPSHOTS:
            raise ValueError(f"unknown mock snapshot {snapshot!r}; use one of {sorted(SNAPSHOTS)}")
        self.snapshot = snapshot
        self.breaker = None

    def fetch_entries(self) -> list[Any]:
        self.last_attempts = 1
        return copy.deepcopy(list(_load(self.snapshot)))

    cached_entries = fetch_entries

    def clear_cache(self) -> None:
        return None

    def probe(self) -> ProbeResult:
        return ProbeResult(True, 0.0, None, None, CLOSED, self.mode)
