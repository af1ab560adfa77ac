"""The registry of an app's functions: canonical path -> ``FunctionSpec``.

Owns filing functions under their canonical paths (rejecting two functions at one path) and
resolving a caller's path with Convex's error texts, hiding internal functions from clients. It
does not import app modules (``functions.loader``) or run functions (the runtime's executor).
"""

from __future__ import annotations

from collections.abc import Iterator

from functions.decorators import FunctionKind, FunctionSpec
from functions.errors import FunctionDefinitionError
from functions.paths import (
    FunctionPath,
    canonicalize,
    function_name_problem,
    join_path,
    module_path_problem,
)
from schema.errors import FunctionNotFound

__all__ = ["Registry"]


class Registry:
    """Maps canonical paths (``"tasks:list"``, ``"admin/users:default"``) to functions.

    Invariant: every stored spec's ``path`` equals its key. One spec object exported under two
    names (``default = list_tasks``) is stored as the original plus an alias copy.
    """

    def __init__(self) -> None:
        self._functions: dict[FunctionPath, FunctionSpec] = {}

    def add(self, path: str, spec: FunctionSpec, *, origin: str | None = None) -> FunctionSpec:
        """File ``spec`` under ``path`` (any accepted spelling) and return the stored spec.

        Adding the same spec at the same path again is a no-op.

        Args:
            path: where to file it, e.g. ``"tasks:list"``.
            spec: the function.
            origin: where it was defined, named in the duplicate error (``"tasks.py: list"``).

        Raises:
            FunctionDefinitionError: another function already has this path.
            InvalidFunctionPath: ``path`` is malformed.
        """
        if not isinstance(spec, FunctionSpec):
            raise TypeError(f"Registry.add expects a FunctionSpec, got {spec!r}")
        canonical = canonicalize(path)
        existing = self._functions.get(canonical)
        if existing is not None:
            if existing is spec or existing.handler is spec.handler and _same(existing, spec):
                return existing
            where = f" ({origin})" if origin else ""
            raise FunctionDefinitionError(
                f"Two functions have the path '{canonical}'{where}: "
                f"{existing.__qualname__} and {spec.__qualname__}. Give one of them another "
                "export name (name=...)."
            )
        stored = spec.with_path(canonical)
        self._functions[canonical] = stored
        return stored

    def add_export(
        self, module: str, attribute: str, spec: FunctionSpec, *, origin: str | None = None
    ) -> FunctionSpec:
        """File a module attribute: the path is ``module:<spec.name or attribute>``.

        Raises:
            FunctionDefinitionError: an invalid module path or export name, or a duplicate.
        """
        name = spec.name if spec.name is not None else attribute
        problem = function_name_problem(name) or module_path_problem(module)
        if problem is not None:
            where = f" ({origin})" if origin else ""
            raise FunctionDefinitionError(f"Cannot export {module}:{name}{where}: {problem}")
        return self.add(join_path(module, name), spec, origin=origin)

    def get(self, path: str) -> FunctionSpec | None:
        """The function at ``path`` whatever its kind or visibility; None when absent/malformed."""
        try:
            return self._functions.get(canonicalize(path))
        except FunctionNotFound:
            return None

    def resolve(
        self, path: str, *, kind: FunctionKind | None = None, allow_internal: bool = False
    ) -> FunctionSpec:
        """Find the function a caller named.

        Args:
            path: the path as the caller sent it (``"messages"``, ``"messages.js:default"``...).
            kind: the kind the caller asked for (``/api/query`` asks for a query); None accepts
                queries, mutations and actions.
            allow_internal: True for calls from the backend itself (scheduler, ``run_query``);
                without it internal functions look exactly like missing ones.

        Raises:
            FunctionNotFound: ``Could not find public function for 'messages:lis'.``, also for
                malformed paths (``InvalidFunctionPath``) and for HTTP actions.
            FunctionNotFound: ``Trying to execute messages:send as Query, but it is defined as
                Mutation.`` when the kind differs.
        """
        canonical = canonicalize(path)
        spec = self._functions.get(canonical)
        if spec is None or (spec.is_internal and not allow_internal):
            raise _not_found(canonical, allow_internal)
        if kind is None:
            if spec.kind is FunctionKind.HTTP_ACTION:
                raise _not_found(canonical, allow_internal)
        elif spec.kind is not kind:
            raise FunctionNotFound(
                f"Trying to execute {canonical} as {kind.value}, but it is defined as "
                f"{spec.kind.value}."
            )
        return spec

    def paths(self) -> list[FunctionPath]:
        """Every filed path, sorted."""
        return sorted(self._functions)

    def items(self) -> Iterator[tuple[FunctionPath, FunctionSpec]]:
        return iter(sorted(self._functions.items()))

    def __iter__(self) -> Iterator[FunctionSpec]:
        return iter(spec for _, spec in self.items())

    def __len__(self) -> int:
        return len(self._functions)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.get(path) is not None

    def __repr__(self) -> str:
        return f"<Registry {len(self)} functions>"


def _same(a: FunctionSpec, b: FunctionSpec) -> bool:
    return (a.kind, a.visibility, a.args, a.returns) == (b.kind, b.visibility, b.args, b.returns)


def _not_found(canonical: str, allow_internal: bool) -> FunctionNotFound:
    which = "function" if allow_internal else "public function"
    return FunctionNotFound(f"Could not find {which} for '{canonical}'.")
