"""The contract between the function model and the runtime's transactions.

``functions`` builds queries (``ctx.db.query(...)``) and calls these methods; ``reactor``'s
``Transaction`` implements them (recording read sets, overlaying its own writes). Nothing here
does I/O. ``UNDEFINED`` marks a missing field (``q.eq("f", UNDEFINED)``) and, in ``patch``, a
field to remove.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from schema.ordering import UNDEFINED, Order

__all__ = [
    "UNDEFINED",
    "Bound",
    "DocumentStore",
    "IndexRange",
    "Order",
    "PaginationOptions",
    "PaginationResult",
]


@dataclass(frozen=True, slots=True)
class Bound:
    field: str
    value: Any
    inclusive: bool


@dataclass(frozen=True, slots=True)
class IndexRange:
    """``eq`` pairs on a prefix of the index's fields, then optional bounds on the next field."""

    eq: tuple[tuple[str, Any], ...] = ()
    lower: Bound | None = None
    upper: Bound | None = None


@dataclass(frozen=True, slots=True)
class PaginationOptions:
    num_items: int
    cursor: str | None = None
    end_cursor: str | None = None
    maximum_rows_read: int | None = None


@dataclass(frozen=True, slots=True)
class PaginationResult:
    page: list[dict[str, Any]]
    is_done: bool
    continue_cursor: str
    split_cursor: str | None = None
    page_status: str | None = None

    def to_value(self) -> dict[str, Any]:
        """The Convex-shaped result object returned to clients."""
        out: dict[str, Any] = {
            "page": self.page,
            "isDone": self.is_done,
            "continueCursor": self.continue_cursor,
        }
        if self.split_cursor is not None:
            out["splitCursor"] = self.split_cursor
        if self.page_status is not None:
            out["pageStatus"] = self.page_status
        return out


class DocumentStore(Protocol):
    """What ``ctx.db`` needs from a transaction. Documents are dicts with ``_id``/``_creationTime``.

    ``index`` is an index name of the table: ``"by_creation_time"`` (the default scan),
    ``"by_id"``, or one declared in the schema. The store raises ``ValidationError`` or
    ``SchemaError`` naming the bad table, index or field.
    """

    def table_for_id(self, table: str | None, id: str) -> str | None:
        """The table of a well-formed id (of ``table`` when given), else ``None``."""
        ...

    async def get(self, id: str) -> dict[str, Any] | None: ...

    def scan(
        self, table: str, index: str, range: IndexRange, order: Order
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield documents in index order; the read set covers exactly what was consumed."""
        ...

    async def paginate(
        self,
        table: str,
        index: str,
        range: IndexRange,
        order: Order,
        predicate: Callable[[dict[str, Any]], bool] | None,
        options: PaginationOptions,
    ) -> PaginationResult: ...

    async def insert(self, table: str, value: dict[str, Any]) -> str: ...

    async def patch(self, id: str, fields: dict[str, Any]) -> None: ...

    async def replace(self, id: str, value: dict[str, Any]) -> None: ...

    async def delete(self, id: str) -> None: ...
