"""A ``/model/info`` answer's entries one at a time, each parsed from its own bytes.

Parsing the whole answer at once holds every entry as a ~186-key dict (about 1.5× the JSON)
while they are mapped; parsing entry by entry lets each dict go as soon as it is mapped, so a
sync's memory is the body plus the mapped rows. Each entry also comes with its raw bytes,
which identify it cheaply: an entry an earlier sync mapped is not parsed again
(``known_entries``).

The split never guesses: an entry ends at the first ``}`` after which its bytes parse as one
JSON object (a strict parser accepts no shorter prefix of an object than the whole object), and
the document must look exactly like ``{"data": [{…}, …]}`` followed by valid JSON. Anything else
(another shape, values orjson rejects such as NaN, an entry that is not an object) raises
:class:`NotSplittable`, and the caller parses the whole document the ordinary way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import xxhash

from .bulk import gc_paused
from .mapping import MappedCatalogue, Prior, map_catalogue, map_entries_with_sources

_WS = rb"[ \t\n\r]*"  # JSON's whitespace, and nothing else
_HEAD = re.compile(_WS + rb'\{' + _WS + rb'"data"' + _WS + rb":" + _WS + rb"\[" + _WS)
#: Where an entry may end: a ``}`` followed by the next entry's ``{`` or by the list's ``]``.
_END = re.compile(rb"\}" + _WS + rb"(?:," + _WS + rb"(?=\{)|\]" + _WS + rb")")
#: Candidate ends tried for one entry before giving up on splitting (they only come from
#: ``}`` inside strings or lists of objects, a few per entry at most in real answers).
MAX_ATTEMPTS = 64


class NotSplittable(Exception):
    """The answer is not the plain ``{"data": [objects]}`` shape: parse it whole instead."""


def entry_digest(raw: bytes | memoryview, seed: int = 0) -> str:
    """What identifies an entry's bytes: XXH3-128 keyed with the known-entries record's random
    seed, ten times faster than SHA-256 over a whole answer (8 ms against 70 ms for 81 MB),
    and a re-sync hashes every entry. Not a cryptographic hash: the seed (never shown, kept in
    the database) and the recorded length, checked too, stand between an entry someone shapes
    and another entry's digest. Were one matched all the same, that sync would take the entry
    for the other one: it would keep the other entry's row, which the server could have had by
    serving that entry again, and store nothing of the shaped entry."""
    return xxhash.xxh3_128_hexdigest(raw, seed)


def split_entries(body: bytes, known: Mapping[str, Prior] | None = None, *,
                  digests: bool = True,
                  seed: int = 0) -> Iterator[tuple[memoryview, str | None, Any]]:
    """Yield ``(raw bytes, digest, entry)`` for each entry of ``body``'s ``data`` list; the
    entry is parsed, or, when its digest (keyed with ``seed``) and its length are in ``known``,
    the earlier sync's :class:`Prior`. ``digests=False`` (page views) skips hashing: the digest
    is None.

    Raises :class:`NotSplittable` (possibly after yielding some entries) when the document is
    not of the expected shape; entries already yielded must then be discarded."""
    known = known or {}
    digests = digests or bool(known)
    # LiteLLM answers its entries in the same order every time: the entry expected next is
    # the one recorded after the last recognised one, and it ends ``length`` bytes on.
    order = list(known)
    position = {digest: index for index, digest in enumerate(order)}
    expected = 0
    head = _HEAD.match(body)
    if head is None:
        raise NotSplittable("the answer does not start with {\"data\": [")
    view = memoryview(body)
    pos = head.end()
    if body[pos:pos + 1] == b"]":
        _check_trailer(body[pos + 1:])
        return
    while True:
        if body[pos:pos + 1] != b"{":
            raise NotSplittable(f"an entry at byte {pos} is not a JSON object")
        entry: Any = None
        if expected < len(order):  # the expected entry, found without scanning for its end
            prior = known[order[expected]]
            end = _END.match(body, pos + prior.length - 1) if prior.length else None
            if end is not None:
                raw = view[pos:end.start() + 1]
                digest = entry_digest(raw, seed)
                if digest == order[expected]:
                    entry = prior
        search = pos
        for _ in range(MAX_ATTEMPTS if entry is None else 0):
            end = _END.search(body, search)
            if end is None:
                raise NotSplittable(f"the entry at byte {pos} has no end")
            raw = view[pos:end.start() + 1]
            digest = entry_digest(raw, seed) if digests else None
            # bytes of a whole earlier entry: never a shorter prefix of another one
            entry = known.get(digest) if digest is not None else None
            if entry is not None and entry.length == len(raw):
                break
            entry = None
            try:
                entry = orjson.loads(raw)
            except orjson.JSONDecodeError:
                search = end.start() + 1
                continue
            break
        else:
            if entry is None:
                raise NotSplittable(f"the entry at byte {pos} did not parse")
        yield raw, digest, entry
        expected = position[digest] + 1 if type(entry) is Prior else expected + 1
        if b"]" in end.group():  # the list's end, not the next entry's start
            _check_trailer(body[end.end():])
            return
        pos = end.end()


def _check_trailer(rest: bytes) -> None:
    """After the list's ``]``: the rest of the object, which must be valid JSON and must not
    name ``data`` again, however spelled (``"d\\u0061ta"``): in an ordinary parse a repeated key
    replaces the list."""
    try:
        orjson.loads(b'{"data":[]' + rest)
        keys = json.loads(b'{"data":[]' + rest, object_pairs_hook=lambda pairs: pairs)
    except (orjson.JSONDecodeError, ValueError, RecursionError):
        raise NotSplittable("the answer does not end as a JSON object") from None
    if not isinstance(keys, list) or [k for k, _ in keys].count("data") != 1:
        raise NotSplittable("the answer names 'data' twice")


def map_answer(body: bytes, url: str, known: Mapping[str, Prior] | None = None,
               seed: int = 0) -> MappedCatalogue:
    """Map a ``/model/info`` answer entry by entry (the whole document only when it cannot be
    split); entries in ``known`` are left for ``known_entries.resolve``. Raises
    ``LiteLLMDataError`` for an answer that is not a catalogue."""
    from .litellm import parse_catalogue  # (the client parses with this module too)

    with gc_paused():  # tens of thousands of acyclic objects: see bulk.gc_paused
        try:
            return map_entries_with_sources(split_entries(body, known, seed=seed))
        except NotSplittable:
            return map_catalogue(parse_catalogue(body, url))
