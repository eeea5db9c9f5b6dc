"""LiteLLM ``/model/info`` entries → ``models`` rows, following DESIGN.md's mapping rules.

Pure: no I/O, no SQLAlchemy, no requests, no streamlit. A malformed entry never stops the
others: it becomes a :class:`Skip` with the reason, and the rest of the catalogue maps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import orjson

from .redact import clean_metadata, is_credential_key  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from .entry_split import Carried

# Column limits of the seed schema.
MAX_ID_LENGTH = 255
MAX_PROVIDER_LENGTH = 100
MAX_INT4 = 2_147_483_647
COST_QUANTUM = Decimal("1e-10")  # DECIMAL(12,10): ten places after the point ...
COST_LIMIT = Decimal("100")  # ... and two before it.

FEATURE_ORDER = ("function_calling", "parallel_function_calling", "vision")

#: Fields a sync owns and compares, in display order. ``description`` is admin-owned and only
#: filled while NULL, so it is handled apart.
SYNCED_FIELDS = (
    "name",
    "provider",
    "context_length",
    "input_cost_per_token",
    "output_cost_per_token",
    "supports_vision",
    "supports_function_calling",
    "supports_parallel_function_calling",
    "supports_tool_choice",
    "supports_streaming",
    "features",
    "availability",
    "metadata",
)

SKIP_WILDCARD = "wildcard"
SKIP_DUPLICATE = "duplicate"
SKIP_DATA_ERROR = "data_error"


@dataclass(frozen=True, slots=True)
class ModelRow:
    """One ``models`` row as the sync sees it; costs are exact decimals, features a tuple."""

    id: str
    name: str
    provider: str
    description: str | None
    context_length: int | None
    input_cost_per_token: Decimal | None
    output_cost_per_token: Decimal | None
    supports_vision: bool
    supports_function_calling: bool
    supports_parallel_function_calling: bool
    supports_tool_choice: bool
    supports_streaming: bool
    features: tuple[str, ...]
    availability: str
    metadata: Mapping[str, Any] = field(hash=False, compare=False)
    #: Canonical JSON of ``metadata`` (sorted keys): what change detection compares.
    metadata_json: bytes = b"{}"

    def value(self, name: str) -> Any:
        """A synced field's comparable value (metadata as its canonical JSON)."""
        return self.metadata_json if name == "metadata" else getattr(self, name)


@dataclass(frozen=True, slots=True)
class Skip:
    """An entry that is not synced, and why. ``kind`` is wildcard, duplicate or data_error."""

    model_id: str
    kind: str
    reason: str
    deployment_id: str | None = None


@dataclass(slots=True)  # (not frozen: a frozen dataclass takes 4× as long to make, and a
class Prior:             # re-sync makes one per entry)
    """What an earlier sync mapped an entry with these exact bytes to (``known_entries``): the
    row's name, deployment, synced-signature hash and description. Its row is taken from the
    database when that row still has this signature, instead of parsing and mapping the entry."""

    model_id: str
    deployment_id: str | None
    signature: str
    description: str | None
    #: The entry's length in bytes: where to look for the end of the entry expected next.
    length: int = 0
    #: The row version (``store.row_versions``) the sync left the row at, recorded when the
    #: row then held exactly this entry's values; and the row's description at that moment.
    version: str | None = None
    stored_description: str | None = None


@dataclass(slots=True)  # (not frozen, as Prior: a re-sync makes one or two per entry)
class KnownRow:
    """Stands in for a ``models`` row nobody has written since the last sync left it holding
    exactly what its (recognised, unchanged) entry maps to: the plan needs only its synced
    digest, description and availability, so neither the entry nor the row is read. Any other
    attribute is missing on purpose: code that needs the values must not get them from here."""

    id: str
    description: str | None
    digest: bytes
    availability: str = "available"


@dataclass(slots=True)  # (not frozen, as Prior)
class Deferred:
    """A chosen entry recognised from an earlier sync, with its bytes in case it must be mapped
    after all (its database row changed since)."""

    prior: Prior
    raw: memoryview


@dataclass(frozen=True)
class MappedCatalogue:
    """The desired rows keyed by id, the skipped entries, and the raw entry count.

    ``deferred`` rows are recognised entries, and ``carried`` whole recognised blocks of them
    (``entry_split.Carried``), still to be resolved against the database
    (``known_entries.resolve``) before a plan is built; ``entry_digests`` gives each row's entry
    digest, deployment id, length in bytes and place in the answer, and ``blocks`` the answer's
    blocks of entries split one by one (``entry_split.Block``), for recording what this sync
    mapped; ``synced_digests`` (by ``id(row)``) are row digests the resolution computed, which
    the plan reuses."""

    rows: Mapping[str, ModelRow]
    skips: tuple[Skip, ...]
    entry_count: int
    deferred: Mapping[str, Deferred] = field(default_factory=dict)
    entry_digests: Mapping[str, tuple[str, str | None, int, int]] = field(default_factory=dict)
    synced_digests: Mapping[int, bytes] = field(default_factory=dict, repr=False)
    carried: tuple[Any, ...] = ()
    blocks: tuple[Any, ...] = ()

    @property
    def rejected_ids(self) -> frozenset[str]:
        """Names LiteLLM serves that we could not map: never marked unavailable for that."""
        return frozenset(s.model_id for s in self.skips if s.kind == SKIP_DATA_ERROR) - set(
            self.rows
        )

    @property
    def errors(self) -> tuple[Skip, ...]:
        return tuple(s for s in self.skips if s.kind == SKIP_DATA_ERROR)


class ModelDataError(ValueError):
    """A value the ``models`` columns cannot hold; the model is skipped, the rest syncs."""


def canonical_json(value: Any) -> bytes:
    """Sorted-key JSON: the one serialisation used for comparing and fingerprinting.

    Copied to an exact-size object: orjson returns its whole working buffer (16 KiB for a
    1.5 KiB row's metadata, measured with orjson 3.13), and rows keep this for a whole sync."""
    return bytes(memoryview(orjson.dumps(value, option=orjson.OPT_SORT_KEYS
                                         | orjson.OPT_NON_STR_KEYS)))


# --- value rules -------------------------------------------------------------------------------


#: JSON prices already judged, by value: a catalogue repeats a few thousand prices over tens
#: of thousands of entries (the decimals are immutable; emptied when full, so a hostile
#: catalogue or years of new prices cost memory only up to the bound).
_FLOAT_COSTS: dict[float, Decimal] = {}
_REMEMBERED_COSTS = 65536


def parse_cost(value: Any, field_name: str) -> Decimal | None:
    """A per-token price as DECIMAL(12,10). 0 is a price; only ``None`` means missing."""
    if value is None:
        return None
    if type(value) is float and 0.0 <= value < 100.0:  # JSON's usual price, judged as a float
        known = _FLOAT_COSTS.get(value)
        if known is not None:
            return known
        quantized = Decimal(repr(value)).quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)
        if quantized < COST_LIMIT:
            quantized = quantized.copy_abs()  # (-0.0: the database keeps no sign on zero)
            if len(_FLOAT_COSTS) >= _REMEMBERED_COSTS:
                _FLOAT_COSTS.clear()
            _FLOAT_COSTS[value] = quantized
            return quantized
        raise ModelDataError(f"{field_name}={value} overflows DECIMAL(12,10) (must be below 100)")
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ModelDataError(f"{field_name} must be a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ModelDataError(f"{field_name} must be a finite number, got {value}")
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ModelDataError(f"{field_name} must be a number, got {str(value)[:40]!r}") from None
    if not number.is_finite():
        raise ModelDataError(f"{field_name} must be a finite number, got {value}")
    if number < 0:
        raise ModelDataError(f"{field_name} must not be negative, got {value}")
    quantized = (
        number.quantize(COST_QUANTUM, rounding=ROUND_HALF_UP) if number < COST_LIMIT else None
    )
    if quantized is None or quantized >= COST_LIMIT:
        raise ModelDataError(f"{field_name}={value} overflows DECIMAL(12,10) (must be below 100)")
    return quantized.copy_abs()  # (never negative: only "-0" has a sign here)


def parse_context_length(value: Any, field_name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ModelDataError(f"{field_name} must be an integer, got a boolean")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ModelDataError(f"{field_name} must be an integer, got {value}")
        value = int(value)
    if not isinstance(value, int):
        raise ModelDataError(f"{field_name} must be an integer, got {type(value).__name__}")
    if value < 0 or value > MAX_INT4:
        raise ModelDataError(f"{field_name}={value} does not fit an INTEGER column")
    return value


def parse_flag(value: Any, field_name: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ModelDataError(f"{field_name} must be true or false, got {str(value)[:40]!r}")


def _check_text(value: str, field_name: str, limit: int | None) -> str:
    if "\x00" in value:
        raise ModelDataError(f"{field_name} contains a NUL character, which cannot be stored")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (\ud800) from JSON: no database can hold it
        raise ModelDataError(f"{field_name} is not valid Unicode (lone surrogate)") from None
    if limit is not None and len(value) > limit:
        raise ModelDataError(f"{field_name} is {len(value)} characters; the column holds {limit}")
    return value


def derive_provider(params: Mapping[str, Any], info: Mapping[str, Any]) -> str:
    custom = params.get("custom_llm_provider")
    if isinstance(custom, str) and custom.strip():
        return custom.strip()
    model = params.get("model")
    if isinstance(model, str) and "/" in model and model.split("/", 1)[0].strip():
        return model.split("/", 1)[0].strip()
    provider = info.get("litellm_provider")
    if isinstance(provider, str) and provider.strip():
        return provider.strip()
    return "unknown"


def _features(flags: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(name for name, on in zip(FEATURE_ORDER, flags, strict=True) if on) + ("chat",)


#: The eight answers for true/false flags, made once (every row asks).
_FEATURES = {flags: _features(flags) for flags in itertools.product((False, True), repeat=3)}


def features_for(function_calling: bool, parallel: bool, vision: bool) -> tuple[str, ...]:
    flags = (function_calling, parallel, vision)
    if type(function_calling) is bool and type(parallel) is bool and type(vision) is bool:
        return _FEATURES[flags]
    return _features(flags)


def _first_present(info: Mapping[str, Any], params: Mapping[str, Any], key: str) -> Any:
    value = info.get(key)
    return params.get(key) if value is None else value


def map_entry(entry: Mapping[str, Any]) -> ModelRow:
    """Map one entry; raise :class:`ModelDataError` when a column cannot hold a value."""
    name = entry.get("model_name")
    if not isinstance(name, str) or not name.strip():
        raise ModelDataError("model_name is missing or not text")
    _check_text(name, "model_name", MAX_ID_LENGTH)
    params = entry.get("litellm_params")
    info = entry.get("model_info")
    params = {} if params is None else params
    info = {} if info is None else info
    if not (type(params) is dict or isinstance(params, Mapping)) or not (
            type(info) is dict or isinstance(info, Mapping)):
        raise ModelDataError("litellm_params and model_info must be JSON objects")

    provider = _check_text(derive_provider(params, info), "provider", MAX_PROVIDER_LENGTH)
    context = info.get("max_input_tokens")
    context_field = "model_info.max_input_tokens"
    if context is None:
        context, context_field = info.get("max_tokens"), "model_info.max_tokens"
    vision = parse_flag(info.get("supports_vision"), "supports_vision", False)
    function_calling = parse_flag(
        info.get("supports_function_calling"), "supports_function_calling", False
    )
    parallel = parse_flag(
        info.get("supports_parallel_function_calling"), "supports_parallel_function_calling", False
    )
    description = info.get("description")
    description = (
        _check_text(description, "description", None) if isinstance(description, str) else None
    )

    try:
        metadata = {
            "litellm_model_info": clean_metadata(info),
            "litellm_params": clean_metadata(params),
        }
    except RecursionError:
        raise ModelDataError("metadata is nested too deeply to be stored") from None
    try:
        metadata_json = canonical_json(metadata)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ModelDataError(f"metadata cannot be stored as JSON: {exc}") from None
    if b"\\u0000" in metadata_json:
        raise ModelDataError("metadata contains a NUL character, which cannot be stored")

    return ModelRow(
        id=name,
        name=name,
        provider=provider,
        description=description,
        context_length=parse_context_length(context, context_field),
        input_cost_per_token=parse_cost(
            _first_present(info, params, "input_cost_per_token"), "input_cost_per_token"
        ),
        output_cost_per_token=parse_cost(
            _first_present(info, params, "output_cost_per_token"), "output_cost_per_token"
        ),
        supports_vision=vision,
        supports_function_calling=function_calling,
        supports_parallel_function_calling=parallel,
        supports_tool_choice=parse_flag(
            info.get("supports_tool_choice"), "supports_tool_choice", False
        ),
        supports_streaming=parse_flag(info.get("supports_streaming"), "supports_streaming", True),
        features=features_for(function_calling, parallel, vision),
        availability="available",
        metadata=metadata,
        metadata_json=metadata_json,
    )


def _deployment_id(entry: Mapping[str, Any]) -> str | None:
    info = entry.get("model_info")
    value = info.get("id") if isinstance(info, Mapping) else None
    return _label(str(value)) if value is not None else None


def _label(name: str) -> str:
    """A model name fit for reports, audit rows and JSON output (lone surrogates replaced)."""
    return name[:MAX_ID_LENGTH].encode("utf-8", "replace").decode("utf-8")


def _entry_label(entry: Any, index: int) -> str:
    if isinstance(entry, Mapping) and isinstance(entry.get("model_name"), str):
        return _label(entry["model_name"])
    return f"<entry #{index}>"


def _content(source: Any) -> bytes:
    """An entry's canonical JSON; ``source`` is the entry or its raw bytes (re-parsed)."""
    try:
        entry = orjson.loads(source) if isinstance(source, memoryview | bytes) else source
        return canonical_json(entry)
    except (TypeError, orjson.JSONEncodeError, orjson.JSONDecodeError):
        return b""


@dataclass(slots=True)
class _Candidate:
    """One entry with a text name, mapped (or failed) as it arrived; chosen among its name's
    deployments once the whole catalogue is known."""

    index: int
    name: str
    deployment_id: str | None
    outcome: ModelRow | Deferred | str  # the row (or the earlier one), or why it failed
    source: Any  # the entry, or its raw bytes: re-read only to order duplicates
    digest: str | None

    def order(self) -> tuple[str, bytes]:
        """Deterministic choice among deployments sharing a name: lowest deployment id, then
        content."""
        return (self.deployment_id or "", _content(self.source))


def _wildcard_expansions(candidates: Iterable[_Candidate]) -> frozenset[str]:
    """Deployment ids shared by entries of different names.

    LiteLLM (seen with 1.108.7) answers a wildcard route such as ``openai/*`` not with one
    entry but with one per model of that provider in its cost map, all carrying the wildcard
    deployment's ``model_info.id``. A configured deployment has one id per name, so an id shared
    by several names marks such an expansion.
    """
    first_name: dict[str, str] = {}
    shared: set[str] = set()
    for candidate in candidates:
        deployment = candidate.deployment_id
        if deployment is not None and first_name.setdefault(deployment, candidate.name) != \
                candidate.name:
            shared.add(deployment)
    return frozenset(shared)


def map_catalogue(entries: Iterable[Any],
                  on_row: Callable[[ModelRow], object] | None = None) -> MappedCatalogue:
    """Map every entry: wildcards and duplicates are skipped and reported, data errors isolated.
    ``on_row`` is handed each row as soon as it is mapped (``row_stage``), chosen or not."""
    return map_entries_with_sources(((entry, None, entry) for entry in entries), on_row)


def map_entries_with_sources(items: Iterable[tuple[Any, str | None, Any]],
                             on_row: Callable[[ModelRow], object] | None = None
                             ) -> MappedCatalogue:
    """:func:`map_catalogue` over ``(source, digest, entry)`` items, consumed one at a time.

    ``source`` (the entry or its raw bytes) is kept instead of the entry, to order deployments
    sharing a name; ``digest`` identifies the raw bytes (None when there are none); ``entry``
    may be a :class:`Prior`: an entry an earlier sync mapped, not parsed again."""
    rejected: list[tuple[int, Skip]] = []  # reported in entry order, before any group
    candidates: list[_Candidate] = []
    from .entry_split import Carried  # (entry_split builds on this module)

    carried: list[Carried] = []
    index = -1
    for source, digest, entry in items:
        index += 1
        if type(entry) is Carried:  # a whole recognised block
            carried.append(entry)
            index += entry.block.count - 1
            continue
        if type(entry) is Prior:
            candidates.append(_Candidate(index, entry.model_id, entry.deployment_id,
                                         Deferred(entry, source), source, digest))
            continue
        if not isinstance(entry, Mapping) or not isinstance(entry.get("model_name"), str):
            rejected.append((index, Skip(_entry_label(entry, index), SKIP_DATA_ERROR,
                                         "entry has no text model_name")))
            continue
        name = entry["model_name"]
        deployment = _deployment_id(entry)
        if "*" in name:
            outcome: ModelRow | Deferred | str = ""  # never mapped: reported as a wildcard
        else:
            try:
                outcome = map_entry(entry)
            except ModelDataError as exc:
                outcome = str(exc)
            else:
                if on_row is not None:
                    on_row(outcome)
        candidates.append(_Candidate(index, name, deployment, outcome, source, digest))

    count = index + 1
    if carried and _meets(carried, candidates):  # as if each of their entries were recognised
        for block in carried:
            for offset, (raw, line) in enumerate(zip(block.entries(), block.lines, strict=True)):
                prior = block.known.prior(block.block.first + offset)
                candidates.append(_Candidate(block.index + offset, prior.model_id,
                                             prior.deployment_id, Deferred(prior, raw), raw,
                                             line[0]))
        candidates.sort(key=lambda c: c.index)
        carried = []
    expanded = _wildcard_expansions(candidates)
    groups: dict[str, list[_Candidate]] = {}
    for candidate in candidates:
        if "*" in candidate.name:
            rejected.append((candidate.index, Skip(
                _label(candidate.name), SKIP_WILDCARD, "wildcard route, not a model",
                candidate.deployment_id)))
        elif expanded and candidate.deployment_id in expanded:
            rejected.append((candidate.index, Skip(
                _label(candidate.name), SKIP_WILDCARD,
                "expanded by LiteLLM from a wildcard route; not a configured model",
                candidate.deployment_id)))
        else:
            groups.setdefault(candidate.name, []).append(candidate)
    skips = [skip for _, skip in sorted(rejected, key=lambda item: item[0])]

    rows: dict[str, ModelRow] = {}
    deferred: dict[str, Deferred] = {}
    entry_digests: dict[str, tuple[str, str | None, int]] = {}
    for name, deployments in groups.items():
        if len(deployments) > 1:
            deployments = sorted(deployments, key=_Candidate.order)
            chosen = next((c for c in deployments if not isinstance(c.outcome, str)), None)
        else:  # (the common case, spelled out: it runs once per model)
            chosen = None if isinstance(deployments[0].outcome, str) else deployments[0]
        if chosen is None:
            skips.append(Skip(_label(name), SKIP_DATA_ERROR, str(deployments[0].outcome),
                              deployments[0].deployment_id))
            continue
        if isinstance(chosen.outcome, Deferred):
            deferred[name] = chosen.outcome
        else:
            rows[name] = chosen.outcome
        if chosen.digest is not None:
            entry_digests[name] = (chosen.digest, chosen.deployment_id, len(chosen.source),
                                   chosen.index)
        for candidate in deployments if len(deployments) > 1 else ():
            if candidate is not chosen:
                skips.append(
                    Skip(
                        _label(name),
                        SKIP_DUPLICATE,
                        f"{len(deployments)} deployments share this model_name; "
                        f"kept deployment {chosen.deployment_id}",
                        candidate.deployment_id,
                    )
                )
    return MappedCatalogue(rows=rows, skips=tuple(skips), entry_count=count,
                           deferred=deferred, entry_digests=entry_digests,
                           carried=tuple(carried))


def _meets(carried: list[Carried], candidates: list[_Candidate]) -> bool:
    """Whether an entry split one by one shares a name or a deployment id with an entry of a
    carried block: then they are grouped together (duplicates, wildcard expansions), entry by
    entry. (Entries of carried blocks were chosen rows of one earlier answer: never each
    other's duplicates.)"""
    if not candidates:
        return False
    names = {line[1] for block in carried for line in block.lines}
    deployments = {line[2] for block in carried for line in block.lines}
    deployments.discard(None)
    return any(c.name in names or c.deployment_id in deployments for c in candidates)
