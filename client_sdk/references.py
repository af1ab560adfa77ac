"""Typed function references: what ``reactor codegen --python`` declares for each function.

Owns ``QueryReference``, ``MutationReference`` and ``ActionReference``: a function's path plus,
for the type checker only, its argument and result types, so ``client.query(api.tasks.list,
{"owner": "ann"})`` is checked by mypy as ``useQuery`` is by tsc. The clients accept them
wherever they accept a path string. It does not validate anything at run time (the server
does) and knows no app: the generated module fills in the types.
"""

from __future__ import annotations

from typing import Any, Generic, ParamSpec, TypeAlias, TypedDict, TypeVar

__all__ = [
    "ActionReference",
    "AnyArgs",
    "FunctionReference",
    "MutationReference",
    "NoArgs",
    "QueryReference",
    "reference_path",
]

P = ParamSpec("P")
"""The call's argument list: ``[TasksListArgs]``, one argument object."""
R = TypeVar("R")
"""The function's result type (``Any`` when it declares no ``returns=``)."""


class NoArgs(TypedDict):
    """The argument object of a function that takes none (``args={}``)."""


AnyArgs: TypeAlias = dict[str, Any]
"""The argument object of a function that declares no ``args=`` (it accepts any object)."""


class FunctionReference(Generic[P, R]):
    """A function's canonical path (``"tasks:list"``) typed with its arguments and result.

    ``P`` is a one-element parameter list ``[Args]``: the clients' ``*args: P.args`` then
    check the argument object a caller passes against ``Args``.
    """

    __slots__ = ("path",)
    kind: str = ""

    def __init__(self, path: str) -> None:
        if not isinstance(path, str) or not path:
            raise TypeError(f"A function reference needs a function path, got {path!r}")
        self.path = path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FunctionReference) and (type(other), other.path) == (
            type(self),
            self.path,
        )

    def __hash__(self) -> int:
        return hash((type(self), self.path))


class QueryReference(FunctionReference[P, R]):
    """A query: accepted by ``query`` and ``subscribe``."""

    __slots__ = ()
    kind = "query"


class MutationReference(FunctionReference[P, R]):
    """A mutation: accepted by ``mutation``."""

    __slots__ = ()
    kind = "mutation"


class ActionReference(FunctionReference[P, R]):
    """An action: accepted by ``action``."""

    __slots__ = ()
    kind = "action"


_A = {"query": "a query", "mutation": "a mutation", "action": "an action"}


def reference_path(function: str | FunctionReference[Any, Any], kind: str) -> str:
    """The path a call sends: a string as given, a reference's ``path``.

    Raises:
        TypeError: a reference of another kind (a mutation passed to ``query``...) or
            anything that is neither a string nor a reference.
    """
    if isinstance(function, FunctionReference):
        if function.kind != kind:
            raise TypeError(f"{function!r} is {_A[function.kind]}, not {_A[kind]}")
        return function.path
    if isinstance(function, str):
        return function
    raise TypeError(f"Expected a function path or a function reference, got {function!r}")
