"""Who may sign in: any issuer of JWTs you configure through environment variables.

REACTOR_EXAMPLE_ISSUER=https://auth.example.com
REACTOR_EXAMPLE_JWKS=https://auth.example.com/.well-known/jwks.json
REACTOR_EXAMPLE_AUDIENCE=teamtasks      (optional)
"""

import os

providers = []
if os.environ.get("REACTOR_EXAMPLE_ISSUER") and os.environ.get("REACTOR_EXAMPLE_JWKS"):
    provider = {
        "type": "customJwt",
        "issuer": os.environ["REACTOR_EXAMPLE_ISSUER"],
        "jwks": os.environ["REACTOR_EXAMPLE_JWKS"],
        "algorithm": os.environ.get("REACTOR_EXAMPLE_ALGORITHM", "RS256"),
    }
    if os.environ.get("REACTOR_EXAMPLE_AUDIENCE"):
        provider["applicationID"] = os.environ["REACTOR_EXAMPLE_AUDIENCE"]
    providers.append(provider)
