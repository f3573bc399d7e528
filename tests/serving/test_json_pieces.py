"""Parsing JSON in pieces gives what orjson gives, for valid and broken documents alike."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainflow.serving.json_pieces import JsonError, loads

FAST = settings(max_examples=300, deadline=None, database=None, derandomize=True)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=8)
    | st.sampled_from(['"', "\\", '\\"', "[", "]", "{", "}", ",", ":", " "])
)
documents = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.text(max_size=6) | st.sampled_from(['"', "\\", "a,b", "{"]), inner, max_size=5)
    ),
    max_leaves=40,
)
pieces = st.integers(1, 40)


def parse_both(body: bytes, piece: int) -> tuple[object, object]:
    """(orjson's result or its error type, ours or JsonError)."""
    try:
        expected: object = orjson.loads(body)
    except orjson.JSONDecodeError:
        expected = JsonError
    try:
        ours: object = loads(body, piece)
    except JsonError:
        ours = JsonError
    return expected, ours


@FAST
@given(document=documents, piece=pieces, indent=st.booleans())
def test_a_valid_document_parses_to_what_orjson_gives(document: object, piece: int, indent: bool) -> None:
    body = orjson.dumps(document, option=orjson.OPT_INDENT_2 if indent else 0)
    assert loads(body, piece) == orjson.loads(body)


@FAST
@given(document=documents, piece=pieces, data=st.data())
def test_a_broken_document_is_refused_when_orjson_refuses_it(document: object, piece: int, data) -> None:
    body = bytearray(orjson.dumps(document))
    at = data.draw(st.integers(0, len(body)))
    edit = data.draw(st.sampled_from(["delete", "insert", "replace"]))
    byte = data.draw(st.sampled_from(b'[]{},:"\\ 0a-.e'))
    if edit == "delete" and at < len(body):
        del body[at]
    elif edit == "insert":
        body.insert(at, byte)
    elif at < len(body):
        body[at] = byte
    expected, ours = parse_both(bytes(body), piece)
    assert ours == expected


@pytest.mark.parametrize("depth", [100, 511, 513, 1000, 1024, 1025, 100_000])
def test_deep_nesting_is_parsed_or_refused_never_a_crash(depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    for piece in (1, 1000, 1_000_000):
        try:
            value = loads(body, piece)
        except JsonError:
            continue
        levels = 0
        while value != []:  # walked down, not compared: == on deep lists recurses too
            (value,) = value
            levels += 1
        assert levels == depth - 1


@pytest.mark.parametrize(
    "body",
    [
        b"[1,,2]",
        b"[1,2,]",
        b'{"a" 1}',
        b'{"a":}',
        b"[1] [2]",
        b"  ",
        b"[" + b" " * 100 + b"]",
        b'["\\\\"]',
        b'["\\"]',
        b"[1}",
        b"{1:2}",
    ],
)
def test_edge_cases_agree_with_orjson(body: bytes) -> None:
    for piece in (1, 3, 1000):
        expected, ours = parse_both(body, piece)
        assert ours == expected, (body[:40], piece)


def test_a_large_body_parses_in_pieces_no_larger_than_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    import trainflow.serving.json_pieces as json_pieces

    sizes: list[int] = []
    real = json_pieces._orjson
    monkeypatch.setattr(json_pieces, "_orjson", lambda piece, offset: sizes.append(len(piece)) or real(piece, offset))
    body = orjson.dumps({"instances": [[0.5] * 784] * 300, "flat": [0.25] * 50_000})
    assert loads(body, 16 * 1024) == orjson.loads(body)
    assert len(sizes) > 20 and max(sizes) <= 2 * 16 * 1024 + 2
