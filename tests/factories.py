"""Shared test data: LiteLLM-shaped entries and an in-process catalogue source."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


def real_entries() -> list[dict[str, Any]]:
    """The real /model/info answer of LiteLLM 1.108.7 (8 deployments)."""
    return json.loads((FIXTURES / "litellm-1.108.7-model_info.json").read_text())["data"]


def entry(
    name: str,
    model: str | None = None,
    *,
    deployment_id: str | None = None,
    params: dict[str, Any] | None = None,
    **info: Any,
) -> dict[str, Any]:
    """A /model/info entry; keyword arguments go into model_info."""
    model_info = {
        "id": deployment_id or f"dep-{name}",
        "litellm_provider": (model or "openai/x").split("/", 1)[0],
        "mode": "chat",
        "max_tokens": 4096,
        "max_input_tokens": 128000,
        "input_cost_per_token": 1e-06,
        "output_cost_per_token": 2e-06,
        "supports_vision": False,
        "supports_function_calling": True,
    }
    model_info.update(info)
    litellm_params = {"model": model or f"openai/{name}"}
    litellm_params.update(params or {})
    return {"model_name": name, "litellm_params": litellm_params, "model_info": model_info}


class StaticSource:
    """A catalogue source whose entries a test sets; counts fetches."""

    mode = "test"
    model_info_url = "test://catalogue/model/info"

    def __init__(self, entries: list[dict[str, Any]] | None = None):
        self.entries = entries if entries is not None else real_entries()
        self.fetches = 0
        self.error: Exception | None = None

    def fetch_entries(self) -> list[Any]:
        self.fetches += 1
        if self.error is not None:
            raise self.error
        return copy.deepcopy(self.entries)

    cached_entries = fetch_entries

    def clear_cache(self) -> None:
        return None
