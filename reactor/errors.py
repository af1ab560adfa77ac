"""The public home of Reactor's whole error tree: a leaf that loads nothing heavy.

The runtime's own errors are defined here, so raising one never imports a server, a driver or
the auth stack; the rest are re-exported from the layer that defines them.

    ReactorError                                    schema.errors
    ├── ValidationError (path)
    │   ├── ArgumentValidationError
    │   ├── ReturnValidationError
    │   └── DocumentValidationError (+SchemaError)  schema.tables
    ├── SchemaError
    │   ├── SchemaDriftError
    │   └── AuthConfigError                         here
    ├── FunctionError
    │   ├── FunctionNotFound
    │   │   └── InvalidFunctionPath (+ValueError)   functions.errors
    │   ├── FunctionDefinitionError                 functions.errors
    │   ├── ModuleLoadError                         functions.errors
    │   ├── QueryNotUnique                          functions.errors
    │   ├── NetworkNotAllowed                       here
    │   ├── AppLoadFailed                           here (a runner could not load the app)
    │   └── UserError = functions.AppError          (data reaches clients)
    ├── TransactionError
    │   ├── OptimisticConcurrencyError              (retried, then reported)
    │   ├── ReadOnlyTransactionError
    │   ├── DocumentNotFound
    │   ├── InvalidCursor
    │   └── TransactionLimitExceeded
    ├── StorageError
    │   └── StorageUnavailable
    ├── SyncProtocolError
    │   ├── InvalidMessage, VersionMismatch
    │   └── SessionError                            here (close code; the final frame is
    │       │                                       reactor.sync.protocol.final_message)
    │       ├── MalformedClientMessage, QuerySetVersionMismatch
    │       └── InternalSessionError: QuerySetInconsistent, IdentityVersionMismatch
    ├── AuthenticationError                         here
    │   └── TooManyFailedAdminKeyAttempts           (HTTP 429)
    ├── BlobTooLarge, BlobNotFound, StorageFileNotFound   here
    ├── RequestTooLarge                             here (HTTP 413)
    ├── CodegenError                                here (an app no API can describe)
    ├── SnapshotError                               here (export, import, backup)
    │   ├── SnapshotImportError                     (names the file/table and line at fault)
    │   └── StreamingExportError                    (a connector's request; ``reason``)
    ├── ConnectionLost, FunctionFailed              (client side)
    └── ProtocolMismatch, HttpError                 client_sdk.errors
"""

from __future__ import annotations

from typing import ClassVar

from functions.errors import (
    FunctionDefinitionError,
    InvalidFunctionPath,
    ModuleLoadError,
    QueryNotUnique,
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
    SchemaDriftError,
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
    "AppLoadFailed",
    "ArgumentValidationError",
    "AuthConfigError",
    "AuthenticationError",
    "BlobNotFound",
    "BlobTooLarge",
    "CodegenError",
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
    "NetworkNotAllowed",
    "OptimisticConcurrencyError",
    "QueryNotUnique",
    "QuerySetInconsistent",
    "QuerySetVersionMismatch",
    "ReactorError",
    "ReadOnlyTransactionError",
    "RequestTooLarge",
    "ReturnValidationError",
    "SchemaDriftError",
    "SchemaError",
    "SessionError",
    "SnapshotError",
    "SnapshotImportError",
    "StorageError",
    "StorageFileNotFound",
    "StorageUnavailable",
    "StreamingExportError",
    "SyncProtocolError",
    "TooManyFailedAdminKeyAttempts",
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


class TooManyFailedAdminKeyAttempts(AuthenticationError):
    """An admin key was refused unchecked: this client (by peer address) used up its budget of
    failed admin key attempts, or too many checks are already queued. HTTP answers 429.

    ``retry_after_s`` is how long until one more attempt would be checked.
    """

    code = "TooManyFailedAdminKeyAttempts"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, reason="TooManyFailedAdminKeyAttempts")


class NetworkNotAllowed(FunctionError):
    """A query or mutation tried to reach the network (they must be deterministic)."""

    code = "NetworkNotAllowed"


class AppLoadFailed(FunctionError):
    """A function runner could not load the app (an import error, or it took too long)."""

    code = "AppLoadFailed"


class CodegenError(ReactorError):
    """``reactor codegen`` cannot describe the app's API (e.g. an ambiguous function name)."""

    code = "CodegenError"


class SnapshotError(ReactorError):
    """A snapshot export, import or backup cannot be done (e.g. one is already running)."""

    code = "SnapshotError"


class StreamingExportError(SnapshotError):
    """A streaming export request that cannot be answered; ``reason`` is the HTTP error code
    (``OutOfRetention``, ``InvalidCursor``, ``TableNotFound``, ...)."""

    code = "StreamingExportError"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SnapshotImportError(SnapshotError):
    """An import was refused before anything of the table at fault was written: the message
    names where (``tasks/documents.jsonl line 3: ...``)."""

    code = "ImportFailed"


class BlobTooLarge(ReactorError):
    """More bytes arrived than the store's size limit allows; nothing was kept."""

    code = "FileTooLarge"

    def __init__(self, limit: int) -> None:
        super().__init__(f"File is too large: the limit is {limit} bytes")
        self.limit = limit


class RequestTooLarge(ReactorError):
    """An HTTP request body passed its route's size limit while it streamed in; what had
    arrived is dropped and the server answers 413."""

    code = "RequestTooLarge"

    def __init__(self, limit: int) -> None:
        super().__init__(f"Request body is too large: the limit for this route is {limit} bytes")
        self.limit = limit


class BlobNotFound(ReactorError):
    code = "BlobNotFound"


class StorageFileNotFound(ReactorError):
    """``ctx.storage.delete`` of a storage id that does not exist (any more)."""

    code = "StorageIdNotFound"


class SessionError(SyncProtocolError):
    """The client broke the protocol; the connection is over and the session must be dropped.

    The caller must send ``reactor.sync.protocol.final_message(exc)`` as a text frame when it
    is not None, then close the
    socket with ``close_code`` / ``close_reason``. ``close_code`` None means "a Close frame with
    no status code" (clients see 1005), which is what Convex does for BadRequest-class errors. A
    frame without a code cannot carry a reason; where the transport cannot send a codeless close
    (ASGI's ``websocket.close`` always has a code), close with 1000 and no reason: JS has
    already terminated on the FatalError, and Rust/Python reconnect after any close.
    """

    code = "SessionError"
    close_code: ClassVar[int | None] = None
    close_reason: ClassVar[str] = ""
    sends_fatal_error: ClassVar[bool] = True


class MalformedClientMessage(SessionError, InvalidMessage):
    """A frame that is not a valid client message (BadRequest): FatalError, then codeless close.

    This only happens with a buggy or foreign client; the official ones never send one.
    """

    code = "InvalidMessage"


class QuerySetVersionMismatch(SessionError, VersionMismatch):
    """``ModifyQuerySet.baseVersion`` is not the last ``newVersion`` received.

    Convex tags this BadRequest ``BaseVersionMismatch``: FatalError, then codeless close.
    """

    code = "BaseVersionMismatch"


class InternalSessionError(SessionError):
    """An inconsistency Convex reports as an untagged (internal) error.

    No final message is sent; the socket closes with 1011 and reason ``InternalServerError``,
    which every client answers by reconnecting with backoff and replaying its state from
    version 0. This is the safe choice because a FatalError would kill a Node JS client.
    """

    code = "InternalServerError"
    close_code = 1011
    close_reason = "InternalServerError"
    sends_fatal_error = False


class QuerySetInconsistent(InternalSessionError):
    """``newVersion <= baseVersion``, a duplicate ``Add`` id, or a ``Remove`` of an unknown id.

    Convex (``state.rs``) fails these with plain ``anyhow`` errors, hence internal.
    """


class IdentityVersionMismatch(InternalSessionError, VersionMismatch):
    """``Authenticate.baseVersion`` is not the number of Authenticates already received.

    Convex (``state.rs`` ``modify_identity``) fails this with an untagged error, hence internal.
    """
