"""Pagination cursors: opaque, tied to one (table, index, order), round-tripping a position."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, strategies as st

from reactor.engine.pagination import END_OF_RANGE, decode_cursor, encode_cursor
from schema.errors import InvalidCursor

FINGERPRINT = "messages.by_author:asc"


@given(st.binary(max_size=64), st.text(max_size=20))
def test_a_position_round_trips(position: bytes, fingerprint: str) -> None:
    assert decode_cursor(encode_cursor(position, fingerprint), fingerprint) == position


def test_end_of_range_round_trips() -> None:
    assert decode_cursor(encode_cursor(END_OF_RANGE, FINGERPRINT), FINGERPRINT) is END_OF_RANGE
    assert repr(END_OF_RANGE) == "END_OF_RANGE"


def test_end_of_range_differs_from_every_position() -> None:
    end = encode_cursor(END_OF_RANGE, FINGERPRINT)

    assert end != encode_cursor(b"", FINGERPRINT)
    assert end != encode_cursor(b"\x01", FINGERPRINT)
    assert decode_cursor(encode_cursor(b"\x01", FINGERPRINT), FINGERPRINT) == b"\x01"


def test_cursors_are_url_safe_ascii() -> None:
    cursor = encode_cursor(bytes(range(256)), FINGERPRINT)

    assert cursor.isascii()
    assert not set(cursor) - set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="
    )


@pytest.mark.parametrize(
    "other", ["messages.by_author:desc", "messages.by_channel:asc", "users.by_author:asc"]
)
def test_a_cursor_of_another_query_is_refused(other: str) -> None:
    cursor = encode_cursor(b"key", FINGERPRINT)

    with pytest.raises(InvalidCursor, match="it belongs to a different query"):
        decode_cursor(cursor, other)


@pytest.mark.parametrize("cursor", ["not base64!", "\u00e9t\u00e9", "abc"])
def test_a_string_that_is_not_base64_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor, match="^Invalid cursor"):
        decode_cursor(cursor, FINGERPRINT)


@pytest.mark.parametrize("cursor", [None, 12, b"bytes"])
def test_a_non_string_is_refused(cursor: Any) -> None:
    with pytest.raises(InvalidCursor, match="not a pagination cursor"):
        decode_cursor(cursor, FINGERPRINT)


def _with_body(body: bytes) -> str:
    """A cursor with the right tag (taken from a real one) and an arbitrary body."""
    tag = base64.urlsafe_b64decode(encode_cursor(b"", FINGERPRINT))[:4]
    return base64.urlsafe_b64encode(tag + body).decode()


@pytest.mark.parametrize("body", [b"\x02", b"\x02key", b"\x01extra", b"\xff"])
def test_a_tagged_cursor_with_an_unknown_kind_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidCursor, match="not a pagination cursor"):
        decode_cursor(_with_body(body), FINGERPRINT)


def test_a_tagged_cursor_with_no_kind_is_refused() -> None:
    with pytest.raises(InvalidCursor, match="Invalid cursor"):
        decode_cursor(_with_body(b""), FINGERPRINT)


def test_the_message_quotes_the_cursor() -> None:
    with pytest.raises(InvalidCursor, match=r"Invalid cursor 'abc'"):
        decode_cursor("abc", FINGERPRINT)
