"""On the real server (uvloop), async HTTP clients are refused in mutations, allowed in actions."""

from __future__ import annotations

from typing import Any

import httpx


def call(url: str, kind: str, path: str, args: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = httpx.post(
        f"{url}/api/{kind}", json={"path": path, "args": [args], "format": "json"}, timeout=10
    ).json()
    return body


def test_async_network_access_is_refused_in_mutations_only(server_url: str) -> None:
    refused = call(server_url, "mutation", "netcheck:fetch_in_mutation", {"url": server_url + "/"})
    assert refused["status"] == "error"
    assert "Network access is not allowed in a mutation" in refused["errorMessage"]
    allowed = call(server_url, "action", "netcheck:fetch_in_action", {"url": server_url + "/"})
    assert allowed["status"] == "success"
    assert "deployment is running" in allowed["value"]
