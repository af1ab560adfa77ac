"""Authentication: auth_config providers, user JWTs -> ``UserIdentity``, admin keys, headers.

Modules: ``providers`` (validating ``providers = [...]``), ``jwks`` (key sets: fetch, cache,
rotation), ``verifier`` (``AuthVerifier``), ``identity`` (claims -> ``UserIdentity``),
``admin`` (``AdminKeyStore``, ``Credentials``, ``parse_authorization``) and ``errors``. The
package checks credentials; it does not load ``auth_config.py``, persist admin key records, or
decide what a refusal does to a WebSocket or an HTTP response (the app, sync server and HTTP
API do).
"""

from __future__ import annotations

from reactor.auth.admin import (
    ADMIN_KEY_PREFIX,
    AdminKeyStore,
    CredentialKind,
    Credentials,
    parse_authorization,
)
from reactor.auth.identity import (
    REGISTERED_CLAIMS,
    STANDARD_CLAIMS,
    USER_IDENTITY_FIELDS,
    normalize_identity_attributes,
    user_identity_from_claims,
)
from reactor.auth.jwks import JwksCache, KeySet, decode_data_uri, parse_jwks
from reactor.auth.providers import (
    CUSTOM_JWT_ALGORITHMS,
    OIDC_ALGORITHMS,
    CustomJwtProvider,
    OidcProvider,
    Provider,
    parse_providers,
)
from reactor.auth.verifier import AuthVerifier, VerifiedToken
from reactor.errors import AuthConfigError, AuthenticationError

__all__ = [
    "ADMIN_KEY_PREFIX",
    "CUSTOM_JWT_ALGORITHMS",
    "OIDC_ALGORITHMS",
    "REGISTERED_CLAIMS",
    "STANDARD_CLAIMS",
    "USER_IDENTITY_FIELDS",
    "AdminKeyStore",
    "AuthConfigError",
    "AuthVerifier",
    "AuthenticationError",
    "CredentialKind",
    "Credentials",
    "CustomJwtProvider",
    "JwksCache",
    "KeySet",
    "OidcProvider",
    "Provider",
    "VerifiedToken",
    "decode_data_uri",
    "normalize_identity_attributes",
    "parse_authorization",
    "parse_jwks",
    "parse_providers",
    "user_identity_from_claims",
]
