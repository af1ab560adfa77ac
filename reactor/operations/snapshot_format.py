"""Convex's snapshot ZIP format, as pure functions: paths, the export JSON value encoding, the
``_tables`` and ``_storage`` lines. Bytes and values in, bytes and values out.

A snapshot holds ``README.md``; ``_tables/documents.jsonl`` (``{"name", "id"}``: each user
table's number, which its ids encode); per table ``<table>/documents.jsonl`` (one document per
line) and ``<table>/generated_schema.jsonl`` (the line ``"uniform"``: values are in the export
encoding below); with file storage, ``_storage/documents.jsonl`` (one line per file) and
``_storage/<id>[.ext]`` (its bytes). Values use Convex's "export JSON": int64 as a JSON integer,
float64 as a number with a decimal point (non-finite ones as ``{"$float"}``), bytes as
``{"$bytes"}``. Reading and writing the ZIP itself is ``snapshot_export``'s and
``snapshot_import``'s.
"""

from __future__ import annotations

import base64
import math
import re
import struct
from collections.abc import Mapping
from typing import Any

import msgspec

from schema.errors import ValidationError
from schema.values import Int64, json_to_convex

__all__ = [
    "GENERATED_SCHEMA_UNIFORM",
    "README",
    "STORAGE_DIR",
    "TABLES_DIR",
    "decode_line",
    "encode_document",
    "export_json",
    "import_json",
    "storage_export_line",
    "storage_import_fields",
    "table_entry",
    "table_of_documents_path",
    "storage_id_of_path",
]

TABLES_DIR = "_tables"
STORAGE_DIR = "_storage"
GENERATED_SCHEMA_UNIFORM = b'"uniform"\n'

README = b"""# Welcome to your Reactor snapshot export!

This ZIP file contains a snapshot of the tables of a Reactor deployment, in Convex's snapshot
format: documents for each table are lines of JSON in <table_name>/documents.jsonl files,
table numbers in _tables/documents.jsonl, and stored files (when included) under _storage/.

Import it with `reactor import snapshot.zip` or `npx convex import snapshot.zip`.
"""

_DOCUMENTS = re.compile(r"\A(?:(.*)/)?([^/]+)/documents\.jsonl\Z")
_STORAGE_FILE = re.compile(r"\A_storage/([^/.]+)(?:\.[^/]+)?\Z")
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def export_json(value: Any) -> Any:
    """A Convex value in the export encoding (a JSON-able object)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Int64):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {"$float": _b64(struct.pack("<d", value))}
    if isinstance(value, int):  # a plain int is stored as float64
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": _b64(bytes(value))}
    if isinstance(value, (list, tuple)):
        return [export_json(item) for item in value]
    if isinstance(value, Mapping):
        return {key: export_json(item) for key, item in value.items()}
    raise ValidationError(f"{type(value).__name__} is not a supported Convex value")


def encode_document(document: Mapping[str, Any]) -> bytes:
    """One ``documents.jsonl`` line (with its newline)."""
    return _encoder.encode(export_json(document)) + b"\n"


def import_json(obj: Any, *, lossless: bool, path: str = "$") -> Any:
    """Decode a JSON value of an imported line into a Convex value.

    ``lossless`` (a snapshot whose ``generated_schema.jsonl`` says ``"uniform"``): a JSON
    integer is an int64. Otherwise (a ``.jsonl``/``.json`` file written by hand, or an old
    snapshot) every number is a float64, as Convex reads them. Either way an object whose first
    key starts with ``$`` is Convex's encoded JSON (``$integer``, ``$float``, ``$bytes``).

    Raises:
        ValidationError: a malformed value, naming its path.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return Int64(obj) if lossless else float(obj)
    if isinstance(obj, float):
        return obj
    if isinstance(obj, list):
        return [
            import_json(item, lossless=lossless, path=f"{path}[{i}]") for i, item in enumerate(obj)
        ]
    if isinstance(obj, dict):
        first = next(iter(obj), None)
        if first is not None and first.startswith("$"):
            return json_to_convex(obj, path)
        return {
            key: import_json(item, lossless=lossless, path=f"{path}.{key}")
            for key, item in obj.items()
        }
    raise ValidationError(f"Unsupported JSON value of type {type(obj).__name__}", path=path)


def decode_line(line: bytes, *, lossless: bool) -> Any:
    """One JSON line decoded into a Convex value.

    Raises:
        ValidationError: not JSON, or not a valid Convex value.
    """
    try:
        raw = _decoder.decode(line)
    except (msgspec.DecodeError, ValueError, OverflowError, RecursionError) as exc:
        raise ValidationError(f"not valid JSON: {exc}") from None
    return import_json(raw, lossless=lossless)


def table_entry(name: str, number: int) -> bytes:
    """One ``_tables/documents.jsonl`` line."""
    return _encoder.encode({"name": name, "id": number}) + b"\n"


def table_of_documents_path(path: str) -> str | None:
    """The table a ``<table>/documents.jsonl`` entry holds (``_tables`` and ``_storage``
    included), or None for any other entry. Tables of components (``_components/...``) are
    not supported: their entries raise.

    Raises:
        ValidationError: an entry inside a component's folder.
    """
    match = _DOCUMENTS.match(path)
    if match is None:
        return None
    if match.group(1):
        raise ValidationError(
            f"{path}: snapshots of Convex components are not supported (only the root tables)"
        )
    return match.group(2)


def storage_id_of_path(path: str) -> str | None:
    """The storage id a ``_storage/<id>[.ext]`` entry holds the bytes of, or None."""
    match = _STORAGE_FILE.match(path)
    if match is None or match.group(1) == "documents":
        return None
    return match.group(1)


def storage_export_line(row: Mapping[str, Any]) -> bytes:
    """A ``_storage`` row as Convex exports it: sha256 in base64, size an integer."""
    line: dict[str, Any] = {
        "_id": row["_id"],
        "_creationTime": float(row["_creationTime"]),
        "sha256": _b64(bytes.fromhex(row["sha256"])),
        "size": int(row["size"]),
    }
    if row.get("contentType") is not None:
        line["contentType"] = row["contentType"]
    return _encoder.encode(line) + b"\n"


def storage_import_fields(line: Mapping[str, Any]) -> tuple[str, float | None, str | None]:
    """(id, creation time, content type) of a ``_storage/documents.jsonl`` line.

    Raises:
        ValidationError: no string ``_id``, or fields of the wrong type.
    """
    storage_id = line.get("_id")
    if not isinstance(storage_id, str):
        raise ValidationError("a _storage line needs a string _id")
    created = line.get("_creationTime")
    if created is not None and not isinstance(created, (int, float)):
        raise ValidationError("_creationTime must be a number")
    content_type = line.get("contentType")
    if content_type is not None and not isinstance(content_type, str):
        raise ValidationError("contentType must be a string")
    return storage_id, None if created is None else float(created), content_type
