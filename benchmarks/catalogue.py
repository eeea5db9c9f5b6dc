"""Deterministic, realistic ``/model/info`` catalogues for the benchmarks.

Every entry is a real LiteLLM 1.108.7 entry (the bundled fixture: ~186 ``model_info`` keys, most
of them null, ~8.5 kB of JSON) with its name, deployment id, provider, prices, limits and flags
varied from a seeded ``random.Random``: the same ``(n, seed)`` always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import orjson

FIXTURE_CANDIDATES = (
    Path(__file__).resolve().parent.parent
    / "tests"
    / "fixtures"
    / "litellm-1.108.7-model_info.json",
    Path("/work/shared/fixtures/litellm-1.108.7-model_info.json"),
)

# (provider prefix of litellm_params.model, litellm_provider, custom_llm_provider or None)
PROVIDERS = (
    ("openai", "openai", None),
    ("anthropic", "anthropic", None),
    ("azure", "azure", None),
    ("bedrock", "bedrock", None),
    ("gemini", "gemini", None),
    ("vertex_ai", "vertex_ai-language-models", None),
    ("hosted_vllm", "hosted_vllm", None),
    ("mistral", "mistral", None),
    ("groq", "groq", None),
    ("together_ai", "together_ai", None),
    ("openrouter", "openrouter", None),
    ("ollama", "ollama", "ollama"),
)
FAMILIES = ("gpt", "claude", "llama", "mistral", "gemini", "qwen", "deepseek", "phi", "command")
CONTEXTS = (4096, 8192, 16384, 32768, 65536, 128000, 131072, 200000, 1048576)


def _templates() -> list[dict[str, Any]]:
    for path in FIXTURE_CANDIDATES:
        if path.exists():
            return orjson.loads(path.read_bytes())["data"]
    raise FileNotFoundError("litellm-1.108.7-model_info.json fixture not found")


def _price(rng: random.Random) -> float | int | None:
    roll = rng.random()
    if roll < 0.05:
        return None
    if roll < 0.10:
        return 0
    # 1e-8 .. 1e-4 per token, three significant digits (like real price lists)
    return float(f"{10 ** rng.uniform(-8, -4):.3g}")


def generate_entries(n: int, seed: int = 42) -> list[dict[str, Any]]:
    """``n`` distinct entries (unique names and deployment ids, no wildcards, no duplicates)."""
    rng = random.Random(seed)
    templates = _templates()
    encoded = [orjson.dumps(t) for t in templates]
    entries = []
    for i in range(n):
        entry = orjson.loads(encoded[i % len(encoded)])  # a deep copy
        prefix, litellm_provider, custom = PROVIDERS[rng.randrange(len(PROVIDERS))]
        family = FAMILIES[rng.randrange(len(FAMILIES))]
        name = f"{family}-{prefix}-{i:06d}"
        info, params = entry["model_info"], entry["litellm_params"]
        params["model"] = f"{prefix}/{family}-{rng.randrange(1, 100)}b-v{i}"
        if custom:
            params["custom_llm_provider"] = custom
        info["id"] = hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()
        info["key"] = name
        info["litellm_provider"] = litellm_provider
        info["input_cost_per_token"] = _price(rng)
        info["output_cost_per_token"] = _price(rng)
        context = CONTEXTS[rng.randrange(len(CONTEXTS))]
        info["max_input_tokens"] = context if rng.random() > 0.05 else None
        info["max_tokens"] = min(context, 16384)
        info["max_output_tokens"] = min(context, 16384)
        for flag in (
            "supports_vision",
            "supports_function_calling",
            "supports_parallel_function_calling",
            "supports_tool_choice",
        ):
            info[flag] = rng.random() < 0.5 if rng.random() > 0.1 else None
        entry["model_name"] = name
        entries.append(entry)
    return entries


def change_some(entries: list[dict[str, Any]], fraction: float, seed: int = 7) -> int:
    """Change the price of ``fraction`` of the entries in place; return how many changed."""
    rng = random.Random(seed)
    count = max(1, round(len(entries) * fraction)) if fraction else 0
    for index in rng.sample(range(len(entries)), count):
        info = entries[index]["model_info"]
        info["input_cost_per_token"] = float(
            f"{(info.get('input_cost_per_token') or 1e-6) * 1.5:.4g}"
        )
    return count


def body(entries: list[dict[str, Any]]) -> bytes:
    """The ``/model/info`` answer as LiteLLM sends it."""
    return orjson.dumps({"data": entries})
