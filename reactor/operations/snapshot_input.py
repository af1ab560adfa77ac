"""Reading what an import is given: a snapshot ZIP (every table, ``_tables``, ``_storage``), or
one table's ``.jsonl``, ``.json`` (an array) or ``.csv`` file, as re-readable streams of rows.

Each table's rows can be read more than once (the importer validates everything before it
writes anything), one row at a time, so memory stays bounded by one row (a ``.json`` array is
the exception: it is parsed whole, and capped). It does not decide what a row means: that is
``snapshot_import``'s.
"""

from __future__ import annotations

import csv
import enum
import math
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

from reactor.errors import SnapshotImportError
from reactor.operations.snapshot_format import (
    GENERATED_SCHEMA_UNIFORM,
    STORAGE_DIR,
    TABLES_DIR,
    storage_id_of_path,
    table_of_documents_path,
)
from schema.errors import ValidationError

__all__ = ["ImportFormat", "SnapshotInput", "TableInput", "open_input"]

MAX_JSON_ARRAY_BYTES = 64 * 1024 * 1024
_decoder = msgspec.json.Decoder()

# A row: (its line number in the file, the line's bytes or an already-parsed JSON value).
Row = tuple[int, "bytes | Any"]


class ImportFormat(enum.Enum):
    """Convex's import formats, by the names its CLI sends."""

    ZIP = "zip"
    JSON_LINES = "jsonLines"
    JSON_ARRAY = "jsonArray"
    CSV = "csv"

    @classmethod
    def parse(cls, name: str) -> ImportFormat:
        for member in cls:
            if member.value == name:
                return member
        names = ", ".join(m.value for m in cls)
        raise SnapshotImportError(f"Unknown import format {name!r}: use one of {names}")

    @classmethod
    def of_path(cls, path: str | Path) -> ImportFormat:
        """The format a file name's extension says (``.zip``, ``.jsonl``, ``.json``, ``.csv``).

        Raises:
            SnapshotImportError: any other extension.
        """
        suffix = Path(path).suffix.lower()
        by_suffix = {
            ".zip": cls.ZIP,
            ".jsonl": cls.JSON_LINES,
            ".json": cls.JSON_ARRAY,
            ".csv": cls.CSV,
        }
        if suffix not in by_suffix:
            raise SnapshotImportError(
                f"Cannot tell the format of {str(path)!r} from its extension: "
                "use a .zip, .jsonl, .json or .csv file"
            )
        return by_suffix[suffix]


@dataclass(slots=True)
class TableInput:
    """One table's rows. ``label`` names the file in error messages; ``lossless`` says JSON
    integers are int64 (a snapshot in the export encoding)."""

    table: str
    label: str
    lossless: bool
    rows: Callable[[], Iterator[Row]]


@dataclass(slots=True)
class SnapshotInput:
    """Everything an import reads. ``table_numbers`` comes from ``_tables``; ``storage`` is
    ``_storage/documents.jsonl`` and ``files`` maps a storage id to its entry's opener."""

    tables: list[TableInput]
    table_numbers: dict[str, int] = field(default_factory=dict)
    storage: TableInput | None = None
    files: dict[str, Callable[[], IO[bytes]]] = field(default_factory=dict)
    close: Callable[[], None] = lambda: None
    is_snapshot: bool = False


def _lines(open_stream: Callable[[], IO[bytes]]) -> Callable[[], Iterator[Row]]:
    def rows() -> Iterator[Row]:
        with open_stream() as stream:
            for number, line in enumerate(stream, start=1):
                if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
                if line.strip():
                    yield number, line

    return rows


def _zip_input(path: Path) -> SnapshotInput:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SnapshotImportError(f"{path.name} is not a readable ZIP file: {exc}") from None
    try:
        return _read_zip(archive)
    except BaseException:
        archive.close()
        raise


def _read_zip(archive: zipfile.ZipFile) -> SnapshotInput:
    names = archive.namelist()
    documents: dict[str, str] = {}
    files: dict[str, Callable[[], IO[bytes]]] = {}
    for name in names:
        try:
            table = table_of_documents_path(name)
        except ValidationError as exc:
            raise SnapshotImportError(exc.message) from None
        if table is not None:
            documents[table] = name
            continue
        storage_id = storage_id_of_path(name)
        if storage_id is not None:
            files[storage_id] = _opener(archive, name)
    numbers: dict[str, int] = {}
    if TABLES_DIR in documents:
        numbers = _table_numbers(archive, documents[TABLES_DIR])
    tables: list[TableInput] = []
    for table, name in sorted(documents.items()):
        if table.startswith("_"):
            continue  # _tables and _storage below; other system tables are not imported
        tables.append(
            TableInput(
                table,
                name,
                _is_uniform(archive, f"{table}/generated_schema.jsonl"),
                _lines(_opener(archive, name)),
            )
        )
    storage = None
    if STORAGE_DIR in documents:
        name = documents[STORAGE_DIR]
        storage = TableInput(STORAGE_DIR, name, False, _lines(_opener(archive, name)))
    return SnapshotInput(tables, numbers, storage, files, archive.close, is_snapshot=True)


def _opener(archive: zipfile.ZipFile, name: str) -> Callable[[], IO[bytes]]:
    return lambda: archive.open(name)


def _is_uniform(archive: zipfile.ZipFile, name: str) -> bool:
    try:
        with archive.open(name) as stream:
            first = stream.readline()
    except KeyError:
        return False  # no generated schema: numbers are float64, as in a hand-written file
    if first.strip() == GENERATED_SCHEMA_UNIFORM.strip():
        return True
    raise SnapshotImportError(
        f"{name}: this generated schema is in the format of Convex exports made before 2024, "
        "which Reactor does not read; export the data again with a current Convex"
    )


def _table_numbers(archive: zipfile.ZipFile, name: str) -> dict[str, int]:
    numbers: dict[str, int] = {}
    for line_number, line in _lines(_opener(archive, name))():
        where = f"{name} line {line_number}"
        try:
            entry = _decoder.decode(line)
        except msgspec.DecodeError as exc:
            raise SnapshotImportError(f"{where}: not valid JSON: {exc}") from None
        table = entry.get("name") if isinstance(entry, dict) else None
        number = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(table, str):
            raise SnapshotImportError(f"{where}: a table needs a string name")
        if isinstance(number, bool) or not isinstance(number, (int, float)) or number < 1:
            raise SnapshotImportError(f"{where}: table {table!r} needs a positive number id")
        if table in numbers:
            raise SnapshotImportError(f"{where}: table {table!r} is listed twice")
        numbers[table] = int(number)
    return numbers


def _json_array(path: Path, table: str, label: str) -> TableInput:
    size = path.stat().st_size
    if size > MAX_JSON_ARRAY_BYTES:
        raise SnapshotImportError(
            f"{label} is {size} bytes: a .json array import is limited to "
            f"{MAX_JSON_ARRAY_BYTES} bytes; use JSON lines (.jsonl) for more"
        )

    def rows() -> Iterator[Row]:
        raw = path.read_bytes()
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            value = _decoder.decode(raw)
        except msgspec.DecodeError as exc:
            raise SnapshotImportError(f"{label}: not valid JSON: {exc}") from None
        if not isinstance(value, list):
            raise SnapshotImportError(f"{label}: a .json import must hold a JSON array")
        yield from enumerate(value, start=1)

    return TableInput(table, label, False, rows)


def _csv_cell(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _csv(path: Path, table: str, label: str) -> TableInput:
    def rows() -> Iterator[Row]:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                raise SnapshotImportError(f"{label} line 1: {exc}") from None
            names = [name.strip(" ") for name in header]
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except (csv.Error, UnicodeDecodeError) as exc:
                    raise SnapshotImportError(f"{label} line {reader.line_num}: {exc}") from None
                if not cells:
                    continue
                if len(cells) != len(names):
                    raise SnapshotImportError(
                        f"{label} line {reader.line_num}: {len(cells)} fields, but the "
                        f"header names {len(names)}"
                    )
                yield reader.line_num, {n: _csv_cell(c) for n, c in zip(names, cells, strict=True)}

    return TableInput(table, label, False, rows)


def open_input(
    path: str | Path, fmt: ImportFormat, *, table: str | None, label: str | None = None
) -> SnapshotInput:
    """Open ``path`` for an import in format ``fmt``. A ZIP imports its tables (``table``
    must be None); any other format imports into ``table``. ``label`` names a single-table
    file in error messages (default: its file name).

    Raises:
        SnapshotImportError: a missing file or table name, or a ZIP that cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise SnapshotImportError(f"{str(path)!r} does not exist or is not a file")
    if fmt is ImportFormat.ZIP:
        if table is not None:
            raise SnapshotImportError(
                "A snapshot ZIP holds its own tables: --table is not allowed with a .zip file"
            )
        return _zip_input(path)
    if table is None:
        raise SnapshotImportError(f"Importing a {fmt.value} file needs --table (the table name)")
    name = path.name if label is None else label
    if fmt is ImportFormat.JSON_ARRAY:
        return SnapshotInput([_json_array(path, table, name)])
    if fmt is ImportFormat.CSV:
        return SnapshotInput([_csv(path, table, name)])
    return SnapshotInput([TableInput(table, name, False, _lines(lambda: open(path, "rb")))])
