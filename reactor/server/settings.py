"""Configuration of the server itself, validated at start (pydantic settings).

Values come from command-line flags, else ``REACTOR_*`` environment variables, else defaults.
A bad value stops the server before it opens anything, with a message naming the setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServerSettings", "SettingsError", "load_settings"]


class SettingsError(ValueError):
    pass


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REACTOR_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(3210, ge=1, le=65535)
    http_port: int = Field(3211, ge=0, le=65535, description="HTTP actions; 0 disables")
    data: Path = Path(".reactor")
    storage: str | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    public_url: str | None = None
    max_upload_bytes: int | None = Field(1 << 30, ge=0)
    admin_key_file: Path | None = None

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
