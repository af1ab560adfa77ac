"""Deployment environment variables: validated names and values, stored in the deployment.

Owns the rules (Convex's self-hosted limits: names start with a letter and use letters, digits
and underscores, at most 256 characters; values at most 8 KiB; at most 512 variables and
512 KiB in all) and the read-only mapping functions see as ``ctx.env``. It does not decide who
may change them (the admin API and CLI check the admin key).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from schema.errors import ValidationError

__all__ = ["EnvironmentVariables", "MAX_NAME_LEN", "MAX_TOTAL_BYTES", "MAX_VALUE_BYTES", "MAX_VARS"]

MAX_NAME_LEN = 256
MAX_VALUE_BYTES = 8 * 1024
MAX_VARS = 512
MAX_TOTAL_BYTES = 512 * 1024
_NAME = re.compile(r"\A[A-Za-z][A-Za-z0-9_]*\Z")
SYSTEM_NAMES = ("CONVEX_CLOUD_URL", "CONVEX_SITE_URL")


def check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"Invalid environment variable name {name!r}: it must start with a letter and contain "
            "only letters, digits and underscores"
        )
    if len(name) > MAX_NAME_LEN:
        raise ValidationError(
            f"Environment variable name {name[:20]}... is longer than {MAX_NAME_LEN} characters"
        )
    if name in SYSTEM_NAMES:
        raise ValidationError(f"{name} is set by the deployment and cannot be changed")
    return name


def check_value(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"The value of {name} must be a string")
    size = len(value.encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise ValidationError(
            f"The value of {name} is {size} bytes, more than the limit of {MAX_VALUE_BYTES}"
        )
    return value


class EnvironmentVariables(Mapping[str, str]):
    """An immutable set of variables; ``with_changes`` returns a validated new one."""

    def __init__(
        self, values: Mapping[str, str] | None = None, *, system: Mapping[str, str] = {}
    ) -> None:
        self._values = dict(values or {})
        self._system = dict(system)

    def __getitem__(self, name: str) -> str:
        if name in self._system:
            return self._system[name]
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._system
        yield from (k for k in self._values if k not in self._system)

    def __len__(self) -> int:
        return len(set(self._values) | set(self._system))

    @property
    def user_values(self) -> dict[str, str]:
        return dict(self._values)

    def with_changes(self, changes: Mapping[str, str | None]) -> EnvironmentVariables:
        """Apply ``{name: value}`` (``None`` removes) and check every limit."""
        values = dict(self._values)
        for name, value in changes.items():
            check_name(name)
            if value is None:
                values.pop(name, None)
            else:
                values[name] = check_value(name, value)
        if len(values) > MAX_VARS:
            raise ValidationError(f"At most {MAX_VARS} environment variables are allowed")
        total = sum(len(k.encode()) + len(v.encode()) for k, v in values.items())
        if total > MAX_TOTAL_BYTES:
            raise ValidationError(
                f"Environment variables take {total} bytes in all, more than {MAX_TOTAL_BYTES}"
            )
        return EnvironmentVariables(values, system=self._system)
