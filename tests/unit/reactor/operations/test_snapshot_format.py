"""The snapshot format's pure parts: Convex's export JSON encoding both ways, entry paths,
``_tables`` and ``_storage`` lines."""

from __future__ import annotations

import base64
import hashlib
import json
import math

import pytest

from reactor.operations.snapshot_format import (
    decode_line,
    encode_document,
    export_json,
    import_json,
    storage_export_line,
    storage_id_of_path,
    storage_import_fields,
    table_entry,
    table_of_documents_path,
)
from schema.errors import ValidationError
from schema.values import Int64


def test_export_encoding_is_convex_export_json() -> None:
    value = {
        "i": Int64(-5),
        "f": 5.0,
        "neg0": -0.0,
        "inf": math.inf,
        "b": b"\x00\x01",
        "nested": [None, True, "s", {"x": Int64(2**62)}],
    }
    line = encode_document(value)
    assert line.endswith(b"\n")
    assert b'"i":-5' in line and b'"f":5.0' in line and b'"neg0":-0.0' in line
    assert b'"b":{"$bytes":"AAE="}' in line
    assert json.loads(line)["inf"] == {
        "$float": base64.b64encode(b"\x00" * 6 + b"\xf0\x7f").decode()
    }
    assert decode_line(line, lossless=True) == value


def test_lossless_only_for_uniform_snapshots() -> None:
    assert import_json(7, lossless=True) == Int64(7)
    assert type(import_json(7, lossless=True)) is Int64
    assert type(import_json(7, lossless=False)) is float
    assert import_json({"$integer": "BwAAAAAAAAA="}, lossless=False) == Int64(7)
    assert export_json(3) == 3.0  # a plain int is float64 in the value model


def test_bad_lines_name_the_fault() -> None:
    with pytest.raises(ValidationError, match="not valid JSON"):
        decode_line(b'{"a": ', lossless=True)
    with pytest.raises(ValidationError, match=r"\$bytes holds invalid base64"):
        decode_line(b'{"a": {"$bytes": "!!"}}', lossless=True)
    with pytest.raises(ValidationError, match="out of range"):
        decode_line(b'{"a": 99999999999999999999}', lossless=True)


def test_entry_paths() -> None:
    assert table_of_documents_path("tasks/documents.jsonl") == "tasks"
    assert table_of_documents_path("_tables/documents.jsonl") == "_tables"
    assert table_of_documents_path("tasks/generated_schema.jsonl") is None
    assert table_of_documents_path("README.md") is None
    with pytest.raises(ValidationError, match="components are not supported"):
        table_of_documents_path("_components/waitlist/tasks/documents.jsonl")
    assert storage_id_of_path("_storage/kg2abc.png") == "kg2abc"
    assert storage_id_of_path("_storage/kg2abc") == "kg2abc"
    assert storage_id_of_path("_storage/documents.jsonl") is None
    assert json.loads(table_entry("tasks", 10001)) == {"name": "tasks", "id": 10001}


def test_storage_lines_both_ways() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    row = {"_id": "abc", "_creationTime": 1.5, "sha256": digest, "size": 1.0, "contentType": "a/b"}
    line = json.loads(storage_export_line(row))
    assert line == {
        "_id": "abc",
        "_creationTime": 1.5,
        "sha256": base64.b64encode(bytes.fromhex(digest)).decode(),
        "size": 1,
        "contentType": "a/b",
    }
    assert storage_import_fields(line) == ("abc", 1.5, "a/b")
    with pytest.raises(ValidationError, match="string _id"):
        storage_import_fields({"_creationTime": 1.0})
