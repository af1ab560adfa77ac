"""The one error tree of Reactor, rooted at :class:`ReactorError`.

It lives at the lowest layer so that every package (``schema``, ``functions``, ``reactor``,
``client_sdk``) raises from the same tree; ``reactor.errors`` re-exports it. Each class has a
stable ``code`` (Convex's short message) and a readable message. It does not decide how an error
reaches a client: the executor and the sync server do that.

    ReactorError
    ├── ValidationError                 (path: "$.owner")
    │   ├── ArgumentValidationError
    │   └── ReturnValidationError
    ├── SchemaError
    │   └── SchemaDriftError            (stored documents break a new schema: table, id, path)
    ├── FunctionError
    │   ├── FunctionNotFound
    │   └── UserError                   (data reaches clients unredacted: ConvexError)
    ├── TransactionError
    │   ├── OptimisticConcurrencyError  (retryable)
    │   ├── ReadOnlyTransactionError
    │   ├── DocumentNotFound
    │   ├── InvalidCursor
    │   └── TransactionLimitExceeded
    ├── StorageError
    │   └── StorageUnavailable
    ├── SyncProtocolError               (close_code: the websocket close code to use)
    │   ├── InvalidMessage
    │   └── VersionMismatch
    ├── ConnectionLost                  (client side)
    └── FunctionFailed                  (client side: message, data)
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ArgumentValidationError",
    "ConnectionLost",
    "DocumentNotFound",
    "FunctionError",
    "FunctionFailed",
    "FunctionNotFound",
    "InvalidCursor",
    "InvalidMessage",
    "OptimisticConcurrencyError",
    "ReactorError",
    "ReadOnlyTransactionError",
    "ReturnValidationError",
    "SchemaDriftError",
    "SchemaError",
    "StorageError",
    "StorageUnavailable",
    "SyncProtocolError",
    "TransactionError",
    "TransactionLimitExceeded",
    "UserError",
    "ValidationError",
    "VersionMismatch",
]


class ReactorError(Exception):
    """Root of every error Reactor raises on purpose."""

    code: ClassVar[str] = "ReactorError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ValidationError(ReactorError):
    """A value does not match a validator or the value model; ``path`` names where."""

    code = "ValidationError"

    def __init__(self, message: str, *, path: str = "$") -> None:
        self.detail = message
        self.path = path
        super().__init__(message if path == "$" else f"{message} - at `{path}`")


class ArgumentValidationError(ValidationError):
    code = "ArgumentValidationError"

    def __init__(self, message: str, *, path: str = "$", function: str = "") -> None:
        super().__init__(message, path=path)
        self.function = function
        if function:
            self.message = f"ArgumentValidationError for {function}: {self.message}"
            self.args = (self.message,)


class ReturnValidationError(ValidationError):
    code = "ReturnValidationError"


class SchemaError(ReactorError):
    """A bad schema, table or index definition, or a document that breaks the schema."""

    code = "SchemaError"


class SchemaDriftError(SchemaError):
    """Documents already stored do not match the schema being deployed (Convex's push check).

    ``table``, ``document_id`` and ``path`` (``"$.owner"``) name the first document at fault.
    """

    code = "SchemaValidationFailed"

    def __init__(self, message: str, *, table: str, document_id: str, path: str) -> None:
        super().__init__(message)
        self.table = table
        self.document_id = document_id
        self.path = path


class FunctionError(ReactorError):
    code = "FunctionError"


class FunctionNotFound(FunctionError):
    code = "FunctionNotFound"


class UserError(FunctionError):
    """Raised by app code (as ``functions.AppError``): its ``data`` reaches the client."""

    code = "UserError"

    def __init__(self, data: Any = None, message: str | None = None) -> None:
        self.data = data
        if message is None:
            message = data if isinstance(data, str) else "ConvexError"
        super().__init__(message)


class TransactionError(ReactorError):
    code = "TransactionError"


class OptimisticConcurrencyError(TransactionError):
    """A read of this transaction was overwritten by a commit after its snapshot."""

    code = "OptimisticConcurrencyControlFailure"

    def __init__(
        self,
        message: str | None = None,
        *,
        table: str | None = None,
        document_id: str | None = None,
        write_ts: int | None = None,
        function: str | None = None,
    ) -> None:
        self.table = table
        self.document_id = document_id
        self.write_ts = write_ts
        self.function = function
        if message is None:
            message = (
                f'Documents read from or written to the "{table or "?"}" table changed while '
                "this mutation was being run and on every subsequent retry."
            )
            if document_id:
                message += f' Another call changed the document with ID "{document_id}".'
            message += " See https://docs.convex.dev/error#1"
        super().__init__(message)


class ReadOnlyTransactionError(TransactionError):
    code = "ReadOnlyTransaction"


class DocumentNotFound(TransactionError):
    code = "DocumentNotFound"


class InvalidCursor(TransactionError):
    code = "InvalidCursor"


class TransactionLimitExceeded(TransactionError):
    code = "TransactionLimitExceeded"


class StorageError(ReactorError):
    code = "StorageError"


class StorageUnavailable(StorageError):
    code = "StorageUnavailable"


class SyncProtocolError(ReactorError):
    """A client broke the sync protocol. ``close_code`` is None for Convex's codeless close."""

    code = "SyncProtocolError"
    close_code: ClassVar[int | None] = None


class InvalidMessage(SyncProtocolError):
    code = "InvalidMessage"


class VersionMismatch(SyncProtocolError):
    code = "BaseVersionMismatch"


class ConnectionLost(ReactorError):
    code = "ConnectionLost"


class FunctionFailed(ReactorError):
    """Client side: a function call failed; ``data`` is set for ConvexError failures."""

    code = "FunctionFailed"

    def __init__(self, message: str, data: Any = None, *, has_data: bool = False) -> None:
        super().__init__(message)
        self.data = data
        self.has_data = has_data or data is not None
