"""Splitting a /model/info answer into its entries: the same entries as a whole parse, or a
clear refusal that sends the caller to the whole parse; mapping either way gives one result."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_core import entry_split
from sync_core.entry_split import Carried, KnownLines, NotSplittable, map_answer, split_entries
from sync_core.errors import LiteLLMDataError
from sync_core.litellm import parse_catalogue
from sync_core.mapping import Prior, map_catalogue

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / \
    "litellm-1.108.7-model_info.json"
URL = "http://litellm.test/model/info"


def _fixture() -> bytes:
    from benchmarks.catalogue import _templates  # the fixture, wherever this checkout sits

    return orjson.dumps({"data": _templates()}, option=orjson.OPT_INDENT_2)


def entries_of(body: bytes) -> list:
    return [entry for _, _, entry in split_entries(body)]


def test_the_real_answer_splits_into_its_entries_with_their_own_bytes():
    body = FIXTURE.read_bytes() if FIXTURE.exists() else _fixture()
    pairs = list(split_entries(body))
    whole = orjson.loads(body)["data"]
    assert [entry for _, _, entry in pairs] == whole
    assert len(pairs) == len(whole) > 1
    assert all(orjson.loads(raw) == entry for raw, _, entry in pairs)
    assert all(bytes(raw).startswith(b"{") and bytes(raw).endswith(b"}") for raw, _, _ in pairs)
    assert len({digest for _, digest, _ in pairs}) == len(pairs)


@pytest.mark.parametrize("body", [
    b'{"data":[]}',
    b' \n{ "data" : [ ] } \n',
    b'{"data":[{"model_name":"a"}]}',
    b'{"data": [ {"model_name": "a"} , {"model_name": "b"} ] , "object": "list"}',
    b'{"data":[{"model_name":"a},{\\"x\\":[{}]}"},{"model_name":"b","l":[{"x":1},{"y":{}}]}]}',
    b'{"data":[{"model_name":"}]}"},{"model_info":{"id":"}, {"}}]}',
    b'{"data":[{"model_name":"a","model_info":{"deep":[[{"a":[{}]}],{}]}}],"x":{"y":"]"}}',
])
def test_split_gives_exactly_the_entries_of_a_whole_parse(body):
    assert entries_of(body) == orjson.loads(body)["data"]


@pytest.mark.parametrize("body", [
    b'{"object":"list","data":[{"model_name":"a"}]}',  # another key first
    b'{"data":[1,2]}',  # entries that are not objects
    b'{"data":[{"model_name":"a","x":NaN}]}',  # not JSON for orjson
    b'{"data":[{"model_name":"a"}],"data":[]}',  # data twice: the last one wins in a parse
    b'{"data":[{"model_name":"a"}',  # cut short
    b'{"data":[{"model_name":"a"}]}garbage',
    b'{"data":[{"model_name":"a"}] ',
    b'[{"model_name":"a"}]',
    b'{"data":[{"model_name":"a"}\x0c]}',  # not JSON whitespace
])
def test_anything_but_the_plain_shape_is_refused(body):
    with pytest.raises(NotSplittable):
        entries_of(body)


def test_an_entry_that_never_parses_is_given_up_after_a_bounded_number_of_tries():
    bad = b'{"model_name":"a","x":NaN}'
    body = b'{"data":[' + b",".join([bad] + [b'{"model_name":"b"}'] * 500) + b"]}"
    with pytest.raises(NotSplittable, match="did not parse"):
        entries_of(body)


def _same(a, b) -> None:
    assert a.rows == b.rows
    assert [r.metadata_json for r in a.rows.values()] == [r.metadata_json for r in b.rows.values()]
    assert a.skips == b.skips
    assert a.entry_count == b.entry_count


def test_mapping_entry_by_entry_equals_mapping_the_parsed_list():
    body = _fixture()
    entries = orjson.loads(body)["data"]
    dupe = json.loads(json.dumps(entries[0]))
    dupe["model_info"]["mode"] = "other"  # same name and deployment id, other content
    wild = dict(entries[1], model_name="openai/*")
    expanded = [dict(entries[2], model_name=f"x-{i}") for i in range(3)]  # one id, three names
    catalogue = [dupe, *entries, wild, *expanded, {"no": "name"}]
    body = orjson.dumps({"data": catalogue})
    assert len(entries_of(body)) == len(catalogue)  # split, not parsed whole
    streamed = map_answer(body, URL)
    _same(streamed, map_catalogue(catalogue))
    plain = map_catalogue(entries)
    added = sorted((s.model_id, s.kind) for s in streamed.skips if s not in plain.skips)
    assert ("openai/*", "wildcard") in added and ("<entry #" + str(len(catalogue) - 1) + ">",
                                                   "data_error") in added
    assert {("x-0", "wildcard"), ("x-1", "wildcard"), ("x-2", "wildcard")} <= set(added)
    assert (entries[0]["model_name"], "duplicate") in added


def test_an_answer_that_cannot_be_split_is_mapped_from_the_whole_parse():
    body = b'{"data":[{"model_name":"a","model_info":{"input_cost_per_token":NaN}},' \
           b'{"model_name":"b"}]}'
    mapped = map_answer(body, URL)
    _same(mapped, map_catalogue(parse_catalogue(body, URL)))
    assert set(mapped.rows) == {"b"} and mapped.errors[0].model_id == "a"


@pytest.mark.parametrize("body", [b"not json", b'{"models":[]}', b"[]"])
def test_an_answer_that_is_no_catalogue_is_a_data_error(body):
    with pytest.raises(LiteLLMDataError):
        map_answer(body, URL)


_text = st.text(alphabet=st.sampled_from(list('ab}{][,": \\\n')), max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    entries=st.lists(st.dictionaries(_text, _json, max_size=4), max_size=6),
    indent=st.booleans(),
    extra=st.dictionaries(_text.filter(lambda k: k != "data"), _json, max_size=2),
)
def test_any_catalogue_splits_into_its_entries_or_is_refused(entries, indent, extra):
    document = {"data": entries, **extra}
    body = orjson.dumps(document, option=orjson.OPT_INDENT_2 if indent else 0)
    assert entries_of(body) == entries  # the alphabet cannot spell "data": never refused


@pytest.mark.parametrize("trailer", [b',"d\\u0061ta":[{"model_name":"b"}]}',
                                     b',"data":[]}', b',"x":1,"\\u0064ata":null}'])
def test_a_repeated_data_key_however_spelled_sends_the_answer_to_the_whole_parse(trailer):
    body = b'{"data":[{"model_name":"a"}]' + trailer
    with pytest.raises(NotSplittable, match="twice"):
        entries_of(body)
    whole = orjson.loads(body)["data"]  # the last "data" wins, as in any parse
    if isinstance(whole, list):
        _same(map_answer(body, URL), map_catalogue(whole))
    else:
        with pytest.raises(LiteLLMDataError):
            map_answer(body, URL)


def test_the_client_and_a_sync_accept_the_same_answers():
    """parse_catalogue (page views) splits like a sync, so nesting near the parser's depth
    limit is judged the same way by both."""
    deep = b"[" * 1021 + b"]" * 1021
    body = b'{"data":[{"model_name":"a","model_info":{"x":' + deep + b'}},{"model_name":"b"}]}'
    try:
        parsed = parse_catalogue(body, URL)
    except LiteLLMDataError:
        with pytest.raises(LiteLLMDataError):
            map_answer(body, URL)
    else:
        _same(map_answer(body, URL), map_catalogue(parsed))


def _edited(entries, edits):
    """``entries`` with hypothesis's edits: changed, inserted, dropped, moved to the front."""
    later = list(entries)
    for kind, at, value in edits:
        at = at % (len(later) + 1)
        if kind == "insert" or not later:
            later.insert(at, value)
        elif kind == "change":
            later[at % len(later)] = {**later[at % len(later)], **value}
        elif kind == "drop":
            later.pop(at % len(later))
        else:
            later.insert(0, later.pop(at % len(later)))
    return later


@settings(max_examples=300, deadline=None)
@given(
    earlier=st.lists(st.dictionaries(_text, _json, max_size=4), max_size=6),
    edits=st.lists(st.tuples(st.sampled_from(["change", "insert", "drop", "swap"]),
                             st.integers(0, 7), st.dictionaries(_text, _json, max_size=3)),
                   max_size=4),
    indent=st.booleans(),
)
def test_recognised_entries_split_exactly_as_if_none_were_known(earlier, edits, indent):
    """Entries an earlier answer had are found by their recorded length, in any later answer
    (entries changed, added, dropped, reordered): the same bytes and digests as a plain split,
    and each recognised entry is the earlier one's record."""
    option = orjson.OPT_INDENT_2 if indent else 0
    known = {digest: Prior(f"m{index}", None, "signature", None, len(raw))
             for index, (raw, digest, _) in enumerate(split_entries(
                 orjson.dumps({"data": earlier}, option=option)))}
    body = orjson.dumps({"data": _edited(earlier, edits)}, option=option)
    plain = list(split_entries(body))
    fast = list(split_entries(body, known))
    assert [(bytes(raw), digest) for raw, digest, _ in fast] == \
        [(bytes(raw), digest) for raw, digest, _ in plain]
    for (_, digest, entry), (_, _, parsed) in zip(fast, plain, strict=True):
        assert entry is known[digest] if digest in known else entry == parsed


@settings(max_examples=300, deadline=None)
@given(
    earlier=st.lists(st.dictionaries(_text, _json, max_size=3), max_size=9),
    edits=st.lists(st.tuples(st.sampled_from(["change", "insert", "drop", "swap"]),
                             st.integers(0, 10), st.dictionaries(_text, _json, max_size=3)),
                   max_size=3),
    indent=st.booleans(),
    size=st.integers(1, 3),
)
def test_carried_blocks_hold_exactly_the_entries_of_a_plain_split(earlier, edits, indent, size):
    """Blocks of an earlier answer (of ``size`` entries) found whole in a later one (entries
    changed, added, dropped, reordered) hold exactly the bytes and digests a plain split gives
    there, entry by entry; the blocks gathered for the next record cover consecutive entries
    split one by one, with their bytes' digest."""
    option = orjson.OPT_INDENT_2 if indent else 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(entry_split, "BLOCK_ENTRIES", size)
        blocks = []
        first = list(split_entries(orjson.dumps({"data": earlier}, option=option),
                                   blocks=blocks))
        lines = [[digest, f"m{i}", None, "s", None, len(raw)]
                 for i, (raw, digest, _) in enumerate(first)]
        known = KnownLines([line[0] for line in lines], [line[5] for line in lines], blocks,
                           lambda i: Prior(f"m{i}", None, "s", None, lines[i][5]), lines)
        body = orjson.dumps({"data": _edited(earlier, edits)}, option=option)
        split, gathered = [], []
        for raw, digest, entry in split_entries(body, known, blocks=gathered):
            if type(entry) is Carried:
                assert bytes(raw) == bytes(entry.raw)
                split += [(bytes(r), line[0]) for r, line in zip(entry.entries(), entry.lines,
                                                                  strict=True)]
            else:
                split.append((bytes(raw), digest))
    plain = [(bytes(raw), digest) for raw, digest, _ in split_entries(body)]
    assert split == plain
    spans, cursor = [], 0  # each entry's place in the body
    for raw, _ in plain:
        start = body.index(raw, cursor)
        spans.append((start, start + len(raw)))
        cursor = start + len(raw)
    covered = []
    for block in gathered:
        assert 1 <= block.count <= size
        start, end = spans[block.first][0], spans[block.first + block.count - 1][1]
        assert block.length == end - start
        assert block.digest == entry_split.entry_digest(body[start:end])
        covered += range(block.first, block.first + block.count)
    assert covered == sorted(set(covered))  # in order, never overlapping


def test_a_recognised_digest_at_another_length_is_not_taken_for_the_entry():
    """The scan path checks the recorded length as the expected-entry path does: an entry is
    recognised only with its digest and its length."""
    body = b'{"data":[{"model_name":"a","p":1},{"model_name":"b","p":2}]}'
    known = {digest: Prior(entry["model_name"], None, "s", None, len(raw) + 1)
             for raw, digest, entry in split_entries(body)}
    found = [entry for _, _, entry in split_entries(body, known)]
    assert found == [{"model_name": "a", "p": 1}, {"model_name": "b", "p": 2}]


def test_an_entry_of_the_recorded_length_but_other_bytes_is_parsed():
    first = b'{"data":[{"model_name":"a","p":1},{"model_name":"b","p":2}]}'
    known = {digest: Prior(entry["model_name"], None, "s", None, len(raw))
             for raw, digest, entry in split_entries(first)}
    body = b'{"data":[{"model_name":"a","p":3},{"model_name":"b","p":2}]}'  # same lengths
    found = [entry for _, _, entry in split_entries(body, known)]
    assert found[0] == {"model_name": "a", "p": 3}
    assert type(found[1]) is Prior and found[1].model_id == "b"
