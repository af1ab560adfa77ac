"""Auth providers of the end-to-end auth app, configured by the test fixture through the server
process's environment (each provider is present only when its variables are set):

* ``E2E_OIDC_DOMAIN`` + ``E2E_OIDC_APPLICATION_ID``: an OIDC provider (discovery + JWKS URL).
* ``E2E_RSA_ISSUER`` + ``E2E_RSA_JWKS`` (+ ``E2E_RSA_APPLICATION_ID``): a customJwt RS256 provider.
* ``E2E_EC_ISSUER`` + ``E2E_EC_JWKS``: a customJwt ES256 provider without an audience check.
"""

import os

providers = []

if os.environ.get("E2E_OIDC_DOMAIN"):
    providers.append(
        {
            "domain": os.environ["E2E_OIDC_DOMAIN"],
            "applicationID": os.environ["E2E_OIDC_APPLICATION_ID"],
        }
    )

if os.environ.get("E2E_RSA_ISSUER"):
    provider = {
        "type": "customJwt",
        "issuer": os.environ["E2E_RSA_ISSUER"],
        "jwks": os.environ["E2E_RSA_JWKS"],
        "algorithm": "RS256",
    }
    if os.environ.get("E2E_RSA_APPLICATION_ID"):
        provider["applicationID"] = os.environ["E2E_RSA_APPLICATION_ID"]
    providers.append(provider)

if os.environ.get("E2E_EC_ISSUER"):
    providers.append(
        {
            "type": "customJwt",
            "issuer": os.environ["E2E_EC_ISSUER"],
            "jwks": os.environ["E2E_EC_JWKS"],
            "algorithm": "ES256",
        }
    )
