"""Table names and their numbers: ids encode a table's number, so numbers never change.

Numbers are allocated in memory when a table is first written and persisted with the commit that
first uses them. This module does not store documents.
"""

from __future__ import annotations

import re
from functools import lru_cache

from schema.errors import ValidationError
from schema.ids import decode_id

__all__ = ["FIRST_USER_TABLE_NUMBER", "SYSTEM_TABLES", "TableRegistry", "is_system_table"]


def is_system_table(name: str) -> bool:
    return name.startswith("_")


FIRST_USER_TABLE_NUMBER = 10_001
# System tables have fixed numbers below the user range (ids encode them).
SYSTEM_TABLES = {"_scheduled_functions": 1, "_storage": 2}
_NAME = re.compile(r"\A[A-Za-z][A-Za-z0-9_]{0,63}\Z")


class TableRegistry:
    def __init__(self, numbers: dict[str, int] | None = None) -> None:
        self._by_name: dict[str, int] = {**(numbers or {}), **SYSTEM_TABLES}
        self._by_number = {n: name for name, n in self._by_name.items()}
        self._unpersisted: dict[str, int] = {}
        self.generation = 0  # grows with every table added: runners re-read ``numbers()``

    def numbers(self) -> dict[str, int]:
        """Every table known here (stored or not yet), by name."""
        return dict(self._by_name)

    def claim(self, name: str, number: int) -> bool:
        """Adopt ``number`` for ``name`` (allocated by a function runner from an older copy of
        this registry); False when either is already taken otherwise."""
        known = self._by_name.get(name)
        if known is not None:
            return known == number
        if number in self._by_number:
            return False
        self._add(name, number)
        return True

    def _add(self, name: str, number: int) -> None:
        self._by_name[name] = number
        self._by_number[number] = name
        self._unpersisted[name] = number
        self.generation += 1

    @staticmethod
    def check_name(name: str) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValidationError(
                f"Invalid table name {name!r}: table names start with a letter and contain only "
                "letters, digits and underscores (at most 64 characters)"
            )

    def number_for(self, name: str) -> int:
        number = self._by_name.get(name)
        if number is None:
            number = max(max(self._by_number), FIRST_USER_TABLE_NUMBER - 1) + 1
            self._add(name, number)
        return number

    def name_for(self, number: int) -> str | None:
        return self._by_number.get(number)

    def table_of_id(self, document_id: str) -> str | None:
        """The table an id belongs to, or None for a malformed id or an unknown table."""
        number = _table_number(document_id)
        return None if number is None else self._by_number.get(number)

    def unpersisted(self) -> dict[str, int]:
        """Tables allocated but not yet stored: every commit carries them until one persists."""
        return dict(self._unpersisted)

    def mark_persisted(self, tables: dict[str, int]) -> None:
        for name in tables:
            self._unpersisted.pop(name, None)


@lru_cache(maxsize=65536)
def _table_number(document_id: str) -> int | None:
    try:
        return decode_id(document_id).table_number
    except ValidationError:
        return None
