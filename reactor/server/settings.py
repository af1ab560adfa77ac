"""Configuration of the server itself, validated at start (pydantic settings).

Values come from command-line flags, else ``REACTOR_*`` environment variables, else defaults.
A bad value stops the server before it opens anything, with a message naming the setting.

Two ports: ``port`` (3210) serves the API and the websocket; ``http_port`` serves the app's
HTTP actions and defaults to ``port + 1`` (3211 with the default port), so servers started with
different ``--port`` values do not collide; an explicit ``http_port`` wins and ``0`` turns
HTTP actions off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reactor.runners.pool import RunnerSettings
from reactor.server.request_guard import (
    DEFAULT_API_BODY_BYTES,
    DEFAULT_HTTP_ACTION_BODY_BYTES,
    BodyLimits,
)
from reactor.sync.limits import (
    DEFAULT_SYNC_MAX_BUFFERED_BYTES,
    DEFAULT_SYNC_MAX_QUEUED_MUTATION_BYTES,
    SyncLimits,
)

__all__ = [
    "DEFAULT_SYNC_MAX_BUFFERED_BYTES",
    "ServerSettings",
    "SettingsError",
    "load_settings",
]


class SettingsError(ValueError):
    pass


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REACTOR_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(3210, ge=1, le=65535)
    http_port: int = Field(
        3211, ge=0, le=65535, description="HTTP actions; default port + 1; 0 disables"
    )
    data: Path = Path(".reactor")
    storage: str | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # "json": every server log line is a JSON object, and every function execution leaves one
    # (docs/operations.md, "Execution logs"); "text": failures at info, successes at debug.
    log_format: Literal["text", "json"] = "text"
    # GET /metrics without the admin key (for a scraper on a private network).
    metrics_public: bool = False
    public_url: str | None = None
    max_upload_bytes: int | None = Field(1 << 30, ge=0)
    # Request bodies, limited while they stream (reactor.server.request_guard): the API routes
    # and /echo (Convex's 16 MiB of arguments plus the JSON envelope), and HTTP actions (20 MiB,
    # Convex's figure). File uploads use max_upload_bytes.
    max_request_bytes: int = Field(DEFAULT_API_BODY_BYTES, ge=1024)
    max_http_action_request_bytes: int = Field(DEFAULT_HTTP_ACTION_BODY_BYTES, ge=1024)
    admin_key_file: Path | None = None
    # Function runners (DESIGN.md "Function runners"): pool sizes default from the CPU count.
    query_runners: int | None = Field(None, ge=1, le=256)
    action_runners: int | None = Field(None, ge=1, le=256)
    function_timeout_s: float = Field(1.0, gt=0, le=3600)
    action_timeout_s: float = Field(600.0, gt=0, le=86400)
    runner_memory_mb: int = Field(1024, ge=0)
    # Bytes a websocket session may owe its client (responses, Pings, the Transition being
    # sent, and results produced while that send is stuck) before it is closed with 1008
    # "ClientTooSlow": a client that does not read its socket must not keep a session going
    # for ever (reactor.server.sync_endpoint).
    sync_max_buffered_bytes: int = Field(DEFAULT_SYNC_MAX_BUFFERED_BYTES, ge=64 * 1024)
    # Frame bytes of the mutations one websocket session has queued (waiting for, or in, its
    # in-order worker) before it is closed with 1013 "TooManyConcurrentRequests".
    sync_max_queued_mutation_bytes: int = Field(
        DEFAULT_SYNC_MAX_QUEUED_MUTATION_BYTES, ge=64 * 1024
    )

    @model_validator(mode="before")
    @classmethod
    def _http_port_follows_port(cls, data: Any) -> Any:
        """Without an explicit ``http_port``, it is ``port + 1`` (flags and environment merged)."""
        if not isinstance(data, dict) or data.get("http_port") is not None:
            return data
        try:
            port = int(data.get("port", 3210))
        except (TypeError, ValueError):
            return data  # the port's own check reports it
        if not 1 <= port <= 65535:
            return data  # likewise
        if port == 65535:
            raise ValueError(
                f"http_port: defaults to port + 1 = {port + 1}, beyond 65535: "
                "give --http-port (0: off)"
            )
        return {**data, "http_port": port + 1}

    @model_validator(mode="after")
    def _distinct_ports(self) -> ServerSettings:
        if self.http_port == self.port:
            raise ValueError(f"http_port: {self.http_port} is also the API port; give another")
        return self

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return None if value is None else value.rstrip("/")

    @property
    def origin(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def site_origin(self) -> str | None:
        return f"http://{self.host}:{self.http_port}" if self.http_port else None

    def runner_settings(self) -> RunnerSettings:
        return RunnerSettings.for_machine(
            query_runners=self.query_runners,
            action_runners=self.action_runners,
            function_timeout_s=self.function_timeout_s,
            action_timeout_s=self.action_timeout_s,
            memory_mb=self.runner_memory_mb,
        )

    @property
    def body_limits(self) -> BodyLimits:
        return BodyLimits(
            api_bytes=self.max_request_bytes,
            upload_bytes=self.max_upload_bytes,
            http_action_bytes=self.max_http_action_request_bytes,
        )

    @property
    def sync_limits(self) -> SyncLimits:
        return SyncLimits(
            max_buffered_bytes=self.sync_max_buffered_bytes,
            max_queued_mutation_bytes=self.sync_max_queued_mutation_bytes,
        )

    @property
    def system_env(self) -> dict[str, str]:
        """The variables every function sees (CONVEX_SITE_URL only with HTTP actions on)."""
        env = {"CONVEX_CLOUD_URL": self.origin}
        if self.site_origin is not None:
            env["CONVEX_SITE_URL"] = self.site_origin
        return env


def load_settings(**overrides: object) -> ServerSettings:
    """Settings from the environment, with non-None ``overrides`` (flags) taking precedence."""
    try:
        given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        return ServerSettings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        raise SettingsError(f"invalid server configuration: {problems}") from None
