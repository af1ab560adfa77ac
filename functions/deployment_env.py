"""``functions.env``: the deployment's environment variables, readable where ``ctx`` is not.

Convex's ``auth.config.ts``, ``http.ts`` and module-level code read ``process.env``: the
deployment's variables (``npx convex env set``). Here module-level code, ``auth_config.py``,
``http.py`` and ``crons.py`` read ``functions.env`` (``env["NAME"]``, ``env.get("NAME")``), a
read-only mapping of the variables in force: those the runtime installs with ``using`` while it
loads the app and while a function runs. Outside both it is empty. It never reads or changes the
server's process environment (``os.environ``).
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator, Mapping
from contextvars import ContextVar

__all__ = ["DeploymentEnv", "env", "using"]

_NONE: Mapping[str, str] = types.MappingProxyType({})
_current: ContextVar[Mapping[str, str]] = ContextVar("reactor_deployment_env", default=_NONE)


class DeploymentEnv(Mapping[str, str]):
    """The variables of the deployment loading the app or running the function, read live."""

    __slots__ = ()

    def __getitem__(self, name: str) -> str:
        return _current.get()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(_current.get()))

    def __len__(self) -> int:
        return len(_current.get())

    def __repr__(self) -> str:
        return f"<functions.env: {len(self)} variables>"


env = DeploymentEnv()


@contextlib.contextmanager
def using(values: Mapping[str, str]) -> Iterator[None]:
    """Make ``values`` what ``functions.env`` reads in this context (the runtime's side)."""
    token = _current.set(values)
    try:
        yield
    finally:
        _current.reset(token)
