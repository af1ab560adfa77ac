"""The commit log's key-map codec: hex strings by index id, and back."""

from __future__ import annotations

from hypothesis import given, strategies as st

from reactor.storage.mongo.commit_log import decode_key_map, encode_key_map

key_maps = st.dictionaries(st.text(min_size=1, max_size=12), st.lists(st.binary(max_size=40)))


def test_keys_are_stored_as_lowercase_hex() -> None:
    assert encode_key_map({"t.by_id": [b"\x00\xff", b""]}) == {"t.by_id": ["00ff", ""]}


def test_a_missing_map_decodes_as_empty() -> None:
    assert decode_key_map(None) == {}
    assert decode_key_map({}) == {}


@given(key_maps)
def test_decoding_inverts_encoding(keys: dict[str, list[bytes]]) -> None:
    assert decode_key_map(encode_key_map(keys)) == keys
