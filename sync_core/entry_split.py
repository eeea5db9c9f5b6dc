"""A ``/model/info`` answer's entries one at a time, each parsed from its own bytes.

Parsing the whole answer at once holds every entry as a ~186-key dict (about 1.5× the JSON)
while they are mapped; parsing entry by entry lets each dict go as soon as it is mapped, so a
sync's memory is the body plus the mapped rows. Each entry also comes with its raw bytes,
which identify it cheaply: an entry an earlier sync mapped is not parsed again
(``known_entries``).

A re-sync does not even split most of the answer: the record (``known_entries``) keeps runs of
consecutive entries as blocks (:class:`Block`: their length in bytes and one digest), and a
block found byte for byte where its first entry is expected is taken whole (:class:`Carried`),
none of its entries split, hashed or looked up one by one.

The split never guesses: an entry ends at the first ``}`` after which its bytes parse as one
JSON object (a strict parser accepts no shorter prefix of an object than the whole object), and
the document must look exactly like ``{"data": [{…}, …]}`` followed by valid JSON. Anything else
(another shape, values orjson rejects such as NaN, an entry that is not an object) raises
:class:`NotSplittable`, and the caller parses the whole document the ordinary way.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import xxhash

from .bulk import gc_paused
from .mapping import MappedCatalogue, ModelRow, Prior, map_catalogue, map_entries_with_sources

_WS = rb"[ \t\n\r]*"  # JSON's whitespace, and nothing else
_HEAD = re.compile(_WS + rb'\{' + _WS + rb'"data"' + _WS + rb":" + _WS + rb"\[" + _WS)
#: Where an entry may end: a ``}`` followed by the next entry's ``{`` or by the list's ``]``.
_END = re.compile(rb"\}" + _WS + rb"(?:," + _WS + rb"(?=\{)|\]" + _WS + rb")")
#: Between two entries of a block: the ``}`` of one, the ``{`` of the next after the comma.
_BETWEEN = re.compile(rb"\}" + _WS + rb"," + _WS + rb"(?=\{)")
#: Candidate ends tried for one entry before giving up on splitting (they only come from
#: ``}`` inside strings or lists of objects, a few per entry at most in real answers).
MAX_ATTEMPTS = 64
#: Entries per block: a block with one changed entry is split entry by entry, so small blocks
#: keep a scattered 1% change from touching many entries (8: about 8% of them), while each
#: block saves the per-entry work of its entries.
BLOCK_ENTRIES = 8


@dataclass(slots=True)
class Block:
    """``count`` consecutive entries: in a record, from its line ``first``; in an answer being
    split, from its entry ``first``. ``length`` bytes from the first entry's ``{`` to the last
    one's ``}``, and their digest."""

    first: int
    count: int
    length: int
    digest: str


@dataclass(slots=True)
class Carried:
    """A recorded block found byte for byte at entry ``index`` of the answer: its entries are
    the record's lines from ``block.first`` (``known``), with the bytes in ``raw``."""

    block: Block
    index: int
    raw: memoryview
    known: KnownLines
    lines: list[list[Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.lines = self.known.lines[self.block.first:self.block.first + self.block.count]

    def entries(self) -> list[memoryview]:
        """The block's entries' bytes, one by one (when one of them must be looked at)."""
        found, position = [], 0
        for length in self.known.lengths[self.block.first:self.block.first + self.block.count]:
            found.append(self.raw[position:position + length])
            between = _BETWEEN.match(self.raw, position + length - 1)
            position = between.end() if between is not None else len(self.raw)
        return found


class KnownLines:
    """What the splitter knows of earlier answers: the recorded entries' digests and lengths in
    answer order, the blocks by first line, and each entry's :class:`Prior`, made only when
    asked for (a re-sync that carries most blocks makes few)."""

    def __init__(self, digests: list[str], lengths: list[int], blocks: list[Block],
                 make_prior: Callable[[int], Prior], lines: list[list[Any]] | None = None):
        self.digests, self.lengths, self.lines = digests, lengths, lines or []
        self.blocks = {block.first: block for block in blocks}
        self._make_prior = make_prior
        self._index: dict[str, int] | None = None

    @classmethod
    def of(cls, priors: Mapping[str, Prior]) -> KnownLines:
        """From priors by digest, in answer order (no blocks)."""
        digests = list(priors)
        return cls(digests, [priors[d].length for d in digests], [],
                   lambda i: priors[digests[i]])

    def index_of(self, digest: str) -> int | None:
        if self._index is None:
            self._index = {d: i for i, d in enumerate(self.digests)}
        return self._index.get(digest)

    def prior(self, index: int) -> Prior:
        return self._make_prior(index)


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


def split_entries(body: bytes, known: Mapping[str, Prior] | KnownLines | None = None, *,
                  digests: bool = True, seed: int = 0,
                  blocks: list[Block] | None = None,
                  ) -> Iterator[tuple[memoryview, str | None, Any]]:
    """Yield ``(raw bytes, digest, entry)`` for each entry of ``body``'s ``data`` list; the
    entry is parsed, or, when its digest (keyed with ``seed``) and its length are in ``known``,
    the earlier sync's :class:`Prior`; or, for a whole recorded block found as it was,
    ``(its bytes, None, Carried)``. ``digests=False`` (page views) skips hashing: the digest is
    None. ``blocks`` gets the blocks of the entries split one by one, for the next record
    (:data:`BLOCK_ENTRIES` consecutive entries at most, never across a carried block).

    Raises :class:`NotSplittable` (possibly after yielding some entries) when the document is
    not of the expected shape; entries already yielded must then be discarded."""
    if not isinstance(known, KnownLines):
        known = KnownLines.of(known or {})
    digests = digests or bool(known.digests)
    # LiteLLM answers its entries in the same order every time: the entry expected next is
    # the one recorded after the last recognised one, and it ends ``length`` bytes on.
    order, lengths, recorded = known.digests, known.lengths, known.blocks
    expected = 0
    index = 0  # of the entry in this answer
    taken: set[int] = set()  # blocks carried (an answer repeating one: split the repeat)
    run: list[int] = []  # the block being gathered: [first entry, count, start, end]

    def close_run() -> None:
        if run and blocks is not None:
            first, count, start, end = run
            blocks.append(Block(first, count, end - start, entry_digest(view[start:end], seed)))
        run.clear()

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
        block = recorded.get(expected) if recorded and expected not in taken else None
        if block is not None:  # a whole block, expected here: one digest for its entries
            end = _END.match(body, pos + block.length - 1)
            raw = view[pos:end.start() + 1] if end is not None else view[:0]
            if end is not None and entry_digest(raw, seed) == block.digest:
                close_run()
                taken.add(block.first)
                yield raw, None, Carried(block, index, raw, known)
                index += block.count
                expected += block.count
                if b"]" in end.group():
                    _check_trailer(body[end.end():])
                    return
                pos = end.end()
                continue
        entry: Any = None
        hit = None
        if expected < len(order):  # the expected entry, found without scanning for its end
            end = _END.match(body, pos + lengths[expected] - 1) if lengths[expected] else None
            if end is not None:
                raw = view[pos:end.start() + 1]
                digest = entry_digest(raw, seed)
                if digest == order[expected]:
                    entry, hit = known.prior(expected), expected
        search = pos
        for _ in range(MAX_ATTEMPTS if entry is None else 0):
            end = _END.search(body, search)
            if end is None:
                raise NotSplittable(f"the entry at byte {pos} has no end")
            raw = view[pos:end.start() + 1]
            digest = entry_digest(raw, seed) if digests else None
            # bytes of a whole earlier entry: never a shorter prefix of another one
            hit = known.index_of(digest) if digest is not None and order else None
            if hit is not None and lengths[hit] == len(raw):
                entry = known.prior(hit)
                break
            hit = None
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
        if not run:
            run.extend((index, 0, pos, 0))
        run[1] += 1
        run[3] = end.start() + 1
        if run[1] == BLOCK_ENTRIES:
            close_run()
        index += 1
        expected = hit + 1 if hit is not None else expected + 1
        if b"]" in end.group():  # the list's end, not the next entry's start
            close_run()
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


def map_answer(body: bytes, url: str, known: Mapping[str, Prior] | KnownLines | None = None,
               seed: int = 0, on_row: Callable[[ModelRow], object] | None = None
               ) -> MappedCatalogue:
    """Map a ``/model/info`` answer entry by entry (the whole document only when it cannot be
    split); entries and blocks in ``known`` are left for ``known_entries.resolve``; ``on_row``
    is handed each row as it is mapped. Raises ``LiteLLMDataError`` for an answer that is not
    a catalogue."""
    from .litellm import parse_catalogue  # (the client parses with this module too)

    with gc_paused():  # tens of thousands of acyclic objects: see bulk.gc_paused
        try:
            blocks: list[Block] = []
            catalogue = map_entries_with_sources(split_entries(body, known, seed=seed,
                                                               blocks=blocks), on_row)
            return dataclasses.replace(catalogue, blocks=tuple(blocks))
        except NotSplittable:
            return map_catalogue(parse_catalogue(body, url), on_row)
