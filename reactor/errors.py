"""The public home of Reactor's whole error tree (defined where each layer needs it).

ReactorError                                    schema.errors
├── ValidationError (path)
│   ├── ArgumentValidationError
│   ├── ReturnValidationError
│   └── DocumentValidationError (+SchemaError)  schema.tables
├── SchemaError
├── FunctionError
│   ├── FunctionNotFound
│   │   └── InvalidFunctionPath (+ValueError)   functions.errors
│   ├── FunctionDefinitionError                 functions.errors
│   ├── ModuleLoadError                         functions.errors
│   ├── QueryNotUnique                          functions.errors
│   └── UserError = functions.AppError          (data reaches clients)
├── TransactionError
│   ├── OptimisticConcurrencyError              (retried, then reported)
│   ├── ReadOnlyTransactionError
│   ├── DocumentNotFound
│   ├── InvalidCursor
│   └── TransactionLimitExceeded
├── StorageError
│   ├── StorageUnavailable
│   └── StorageConflict
├── SyncProtocolError
│   ├── InvalidMessage, VersionMismatch
│   └── SessionError                            reactor.sync.protocol (final message, close code)
│       ├── MalformedClientMessage, QuerySetVersionMismatch
│       └── InternalSessionError: QuerySetInconsistent, IdentityVersionMismatch
├── ConnectionLost, FunctionFailed              (client side)
├── ProtocolMismatch, HttpError                 client_sdk.errors
├── AuthenticationError; AuthConfigError (a SchemaError)     reactor.auth
├── NetworkNotAllowed (a FunctionError)          reactor.core.determinism
└── StorageFileNotFound, BlobTooLarge            reactor.platform.files, reactor.platform.blobs
"""

from __future__ import annotations

from functions.errors import (
    FunctionDefinitionError,
    InvalidFunctionPath,
    ModuleLoadError,
    QueryNotUnique,
)
from reactor.auth import AuthConfigError, AuthenticationError
from reactor.core.determinism import NetworkNotAllowed
from reactor.platform.blobs import BlobTooLarge
from reactor.platform.files import StorageFileNotFound
from reactor.sync.protocol import (
    IdentityVersionMismatch,
    InternalSessionError,
    MalformedClientMessage,
    QuerySetInconsistent,
    QuerySetVersionMismatch,
    SessionError,
)
from schema.errors import (
    ArgumentValidationError,
    ConnectionLost,
    DocumentNotFound,
    FunctionError,
    FunctionFailed,
    FunctionNotFound,
    InvalidCursor,
    InvalidMessage,
    OptimisticConcurrencyError,
    ReactorError,
    ReadOnlyTransactionError,
    ReturnValidationError,
    SchemaError,
    StorageConflict,
    StorageError,
    StorageUnavailable,
    SyncProtocolError,
    TransactionError,
    TransactionLimitExceeded,
    UserError,
    ValidationError,
    VersionMismatch,
)
from schema.tables import DocumentValidationError

__all__ = [
    "ArgumentValidationError",
    "AuthConfigError",
    "AuthenticationError",
    "BlobTooLarge",
    "NetworkNotAllowed",
    "StorageFileNotFound",
    "ConnectionLost",
    "DocumentNotFound",
    "DocumentValidationError",
    "FunctionDefinitionError",
    "FunctionError",
    "FunctionFailed",
    "FunctionNotFound",
    "IdentityVersionMismatch",
    "InternalSessionError",
    "InvalidCursor",
    "InvalidFunctionPath",
    "InvalidMessage",
    "MalformedClientMessage",
    "ModuleLoadError",
    "OptimisticConcurrencyError",
    "QueryNotUnique",
    "QuerySetInconsistent",
    "QuerySetVersionMismatch",
    "ReactorError",
    "ReadOnlyTransactionError",
    "ReturnValidationError",
    "SchemaError",
    "SessionError",
    "StorageConflict",
    "StorageError",
    "StorageUnavailable",
    "SyncProtocolError",
    "TransactionError",
    "TransactionLimitExceeded",
    "UserError",
    "ValidationError",
    "VersionMismatch",
]
