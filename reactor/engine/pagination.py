"""Pagination cursors: opaque strings naming a position in one query's index range.

A cursor carries the index key of the last document of a page (or "end of range") and a tag of
the (table, index, order) it belongs to, so a cursor from another query is refused with
``InvalidCursor``. Cursors are not secret: they only name positions the query could read anyway.
"""

from __future__ import annotations

import base64
import zlib
from typing import Final

from schema.errors import InvalidCursor

__all__ = ["END_OF_RANGE", "decode_cursor", "encode_cursor"]


class _EndOfRange:
    __slots__ = ()

    def __repr__(self) -> str:
        return "END_OF_RANGE"


END_OF_RANGE: Final = _EndOfRange()


def _tag(fingerprint: str) -> bytes:
    return zlib.crc32(fingerprint.encode()).to_bytes(4, "big")


def encode_cursor(position: bytes | _EndOfRange, fingerprint: str) -> str:
    body = b"\x01" if isinstance(position, _EndOfRange) else b"\x00" + position
    return base64.urlsafe_b64encode(_tag(fingerprint) + body).decode("ascii")


def decode_cursor(cursor: str, fingerprint: str) -> bytes | _EndOfRange:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii"))
    except (ValueError, UnicodeEncodeError, AttributeError) as exc:
        raise InvalidCursor(f"Invalid cursor {cursor!r}: not a pagination cursor") from exc
    if len(raw) < 5 or raw[:4] != _tag(fingerprint):
        raise InvalidCursor(
            f"Invalid cursor {cursor!r}: it belongs to a different query (InvalidCursor)"
        )
    if raw[4] == 1 and len(raw) == 5:
        return END_OF_RANGE
    if raw[4] != 0:
        raise InvalidCursor(f"Invalid cursor {cursor!r}: not a pagination cursor")
    return raw[5:]
