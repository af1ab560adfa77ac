"""Document ids: Convex's table-tagged id format (v6), encoded and decoded.

An id is ``VInt(table_number) ‖ 16-byte internal id ‖ 2-byte checksum footer`` written in
lowercase Crockford base32. The table number makes ``v.id("tasks")`` checkable without a read.
This module does not assign table numbers (the storage engine does).
"""

from __future__ import annotations

import os
import time

from schema.errors import ValidationError

__all__ = ["DecodedId", "decode_id", "encode_id", "new_internal_id"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_DECODE = {ch: i for i, ch in enumerate(_ALPHABET)}


class DecodedId(tuple[int, bytes]):
    """(table_number, internal_id)."""

    @property
    def table_number(self) -> int:
        return self[0]

    @property
    def internal_id(self) -> bytes:
        return self[1]


def _footer(data: bytes) -> bytes:
    s1 = s2 = 0
    for byte in data:
        s1 = (s1 + byte) & 0xFF
        s2 = (s2 + s1) & 0xFF
    return bytes((s1, s2))


def _vint(number: int) -> bytes:
    out = bytearray()
    while True:
        low = number & 0x7F
        number >>= 7
        if number:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _b32encode(data: bytes) -> str:
    bits = int.from_bytes(data, "big")
    nbits = len(data) * 8
    pad = (-nbits) % 5
    bits <<= pad
    nchars = (nbits + pad) // 5
    return "".join(_ALPHABET[(bits >> (5 * (nchars - 1 - i))) & 31] for i in range(nchars))


def _b32decode(text: str) -> bytes:
    nbytes = len(text) * 5 // 8
    pad = len(text) * 5 - nbytes * 8
    bits = 0
    for ch in text:
        bits = (bits << 5) | _DECODE[ch]
    if bits & ((1 << pad) - 1):
        raise ValueError("non-canonical padding")
    return (bits >> pad).to_bytes(nbytes, "big")


def new_internal_id() -> bytes:
    """14 random bytes followed by the big-endian day number since the Unix epoch."""
    days = int(time.time() // 86400) & 0xFFFF
    return os.urandom(14) + days.to_bytes(2, "big")


def encode_id(table_number: int, internal_id: bytes) -> str:
    if len(internal_id) != 16:
        raise ValueError("internal ids are 16 bytes")
    body = _vint(table_number) + internal_id
    return _b32encode(body + _footer(body))


def decode_id(text: str) -> DecodedId:
    """Parse an id string; raises ``ValidationError`` naming what is wrong."""
    if not isinstance(text, str) or not 31 <= len(text) <= 37:
        raise ValidationError(f"Invalid ID {text!r}: wrong length")
    try:
        raw = _b32decode(text)
    except (KeyError, ValueError) as exc:
        raise ValidationError(f"Invalid ID {text!r}: not an ID") from exc
    if len(raw) < 19 or _footer(raw[:-2]) != raw[-2:]:
        raise ValidationError(f"Invalid ID {text!r}: bad checksum")
    number = 0
    shift = 0
    index = 0
    while True:
        byte = raw[index]
        number |= (byte & 0x7F) << shift
        index += 1
        if not byte & 0x80:
            break
        shift += 7
        if index >= 5:
            raise ValidationError(f"Invalid ID {text!r}: bad table number")
    internal = raw[index:-2]
    if len(internal) != 16 or _b32encode(raw) != text:
        raise ValidationError(f"Invalid ID {text!r}: not canonical")
    return DecodedId((number, internal))
