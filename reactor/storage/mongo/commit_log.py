"""The codec of the MongoDB commit log's key maps: each commit's written index keys (and their
element-boundary prefixes) as hex strings by index id, as stored in ``_reactor_commits`` and
read back by the committers' conflict check and the polling feed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["decode_key_map", "encode_key_map"]


def encode_key_map(keys: Mapping[str, Sequence[bytes]]) -> dict[str, list[str]]:
    """Index keys by index id, as the commit log stores them (hex strings)."""
    return {k: [x.hex() for x in v] for k, v in keys.items()}


def decode_key_map(raw: Mapping[str, Sequence[str]] | None) -> dict[str, list[bytes]]:
    """The inverse of ``encode_key_map`` (a missing map is empty)."""
    return {k: [bytes.fromhex(h) for h in v] for k, v in (raw or {}).items()}
