"""The public home of Reactor's whole error tree; a leaf that loads nothing heavy.

The runtime's own errors are defined here (so raising one never imports a server, a driver or
the auth stack); the rest are re-exported from where their layer defines them:

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
    "BlobNotFound",
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
    "StorageError",
    "StorageUnavailable",
    "SyncProtocolError",
    "TransactionError",
    "TransactionLimitExceeded",
    "UserError",
    "ValidationError",
    "VersionMismatch",
]


class AuthConfigError(SchemaError):
    """``providers`` in ``auth_config.py`` is malformed.

    ``index`` is the offending provider's position (None when the list itself is wrong) and
    ``field`` the offending key (None when the whole entry is wrong).
    """

    code = "AuthConfigInvalid"

    def __init__(self, message: str, *, index: int | None = None, field: str | None = None) -> None:
        self.index = index
        self.field = field
        if field is not None:
            message = f"`{field}` {message}"
        if index is not None:
            message = f"Provider at index {index}: {message}"
        super().__init__(message)


class AuthenticationError(ReactorError):
    """A credential (user JWT, admin key, Authorization header) was refused.

    ``code`` is always ``"Unauthenticated"``. ``reason`` is Convex's finer tag for the failure:
    ``"InvalidAuthHeader"`` (malformed token or header, missing claim or header),
    ``"NoAuthProvider"``, ``"TokenExpired"``, ``"InvalidSignature"``, ``"UnknownKey"``,
    ``"AuthProviderUnavailable"`` (discovery or JWKS could not be fetched) or ``"BadAdminKey"``.
    """

    code = "Unauthenticated"

    def __init__(self, message: str, *, reason: str = "Unauthenticated") -> None:
        self.reason = reason
        super().__init__(message)


class NetworkNotAllowed(FunctionError):
    """A query or mutation tried to reach the network (they must be deterministic)."""

    code = "NetworkNotAllowed"


class BlobTooLarge(ReactorError):
    """More bytes arrived than the store's size limit allows; nothing was kept."""

    code = "FileTooLarge"

    def __init__(self, limit: int) -> None:
        super().__init__(f"File is too large: the limit is {limit} bytes")
        self.limit = limit


class BlobNotFound(ReactorError):
    code = "BlobNotFound"


class StorageFileNotFound(ReactorError):
    """``ctx.storage.delete`` of a storage id that does not exist (any more)."""

    code = "StorageIdNotFound"
