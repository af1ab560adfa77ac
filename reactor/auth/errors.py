"""The two errors of ``reactor.auth``: a bad ``auth_config.py`` and a refused credential.

Owns their codes, messages and structured attributes. It does not decide how a refusal reaches
a client: the sync server turns :class:`AuthenticationError` into ``AuthError`` and the HTTP API
into a 401.
"""

from __future__ import annotations

from schema.errors import ReactorError, SchemaError

__all__ = ["AuthConfigError", "AuthenticationError"]


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
