"""Names for the runtime's identifiers; plain aliases so hot paths pay nothing for them."""

from __future__ import annotations

from typing import NewType

__all__ = [
    "DocumentId",
    "IndexId",
    "QueryId",
    "RequestId",
    "SessionId",
    "TableName",
    "Timestamp",
]

Timestamp = NewType("Timestamp", int)  # nanoseconds since the Unix epoch
TableName = NewType("TableName", str)
IndexId = NewType("IndexId", str)  # "<table>.<index>", e.g. "tasks.by_owner"
DocumentId = NewType("DocumentId", str)
QueryId = NewType("QueryId", int)
RequestId = NewType("RequestId", int)
SessionId = NewType("SessionId", str)
