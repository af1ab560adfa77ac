"""Filter expressions: the ``q`` of ``.filter(lambda q: ...)``, and their compilation.

Owns the expression tree Convex's ``filter_builder`` defines (``field``, comparisons in the
Convex total order, arithmetic, ``and_``/``or_``/``not_``) and compiling it, once per query, to a
predicate over documents. It does not decide which documents are scanned (index ranges, in
``functions.database``, and the store); filters never narrow a scan.

Semantics: a missing field is ``UNDEFINED``, which sorts before ``null``; comparisons use
``schema.ordering.compare_values`` (so ``Int64(1)`` and ``1.0`` are not equal, and every int64
sorts before every float64); a plain Python ``int`` is a float64. ``and_``/``or_``/``not_`` and
the filter itself treat only ``True`` as true. Arithmetic keeps int64 with int64 and float64 with
float64; mixing them, or a non-number operand, is a ``TypeError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from schema.ordering import UNDEFINED, compare_values
from schema.values import Int64, check_value, type_name

__all__ = [
    "Expression",
    "FilterBuilder",
    "Predicate",
    "build_filter",
    "compile_filter",
    "filter_builder",
]

Predicate = Callable[[Mapping[str, Any]], bool]
_Eval = Callable[[Mapping[str, Any]], Any]


class Expression:
    """A node of a filter expression. Build them with ``q``; they are not Python booleans."""

    __slots__ = ()
    __hash__ = object.__hash__

    def compile(self) -> _Eval:
        """A function computing this expression's value for one document."""
        raise NotImplementedError

    def __bool__(self) -> bool:
        raise TypeError(
            "A filter expression is not a Python boolean: combine expressions with "
            "q.and_(...), q.or_(...) and q.not_(...) instead of and/or/not/if"
        )

    def __eq__(self, other: object) -> bool:
        raise TypeError("Compare filter expressions with q.eq(a, b), not ==")

    def __ne__(self, other: object) -> bool:
        raise TypeError("Compare filter expressions with q.neq(a, b), not !=")


class _Field(Expression):
    __slots__ = ("parts",)

    def __init__(self, parts: tuple[str, ...]) -> None:
        self.parts = parts

    def compile(self) -> _Eval:
        parts = self.parts
        if len(parts) == 1:
            (name,) = parts

            return lambda doc: doc.get(name, UNDEFINED)

        def nested(doc: Mapping[str, Any]) -> Any:
            value: Any = doc
            for part in parts:
                if not isinstance(value, Mapping):
                    return UNDEFINED
                value = value.get(part, UNDEFINED)
            return value

        return nested

    def __repr__(self) -> str:
        return f"q.field({'.'.join(self.parts)!r})"


class _Literal(Expression):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def compile(self) -> _Eval:
        value = self.value
        return lambda doc: value

    def __repr__(self) -> str:
        return repr(self.value)


class _Call(Expression):
    """An operator applied to operand expressions; ``apply`` combines the operand values."""

    __slots__ = ("apply", "op", "operands")

    def __init__(
        self, op: str, apply: Callable[..., Any], operands: tuple[Expression, ...]
    ) -> None:
        self.op = op
        self.apply = apply
        self.operands = operands

    def compile(self) -> _Eval:
        apply = self.apply
        evals = [operand.compile() for operand in self.operands]
        if len(evals) == 1:
            (one,) = evals
            return lambda doc: apply(one(doc))
        if len(evals) == 2:
            left, right = evals
            return lambda doc: apply(left(doc), right(doc))
        return lambda doc: apply(*[e(doc) for e in evals])

    def __repr__(self) -> str:
        return f"q.{self.op}({', '.join(map(repr, self.operands))})"


class _Junction(Expression):
    """``and_``/``or_``: short-circuits, and only ``True`` counts as true."""

    __slots__ = ("is_and", "operands")

    def __init__(self, is_and: bool, operands: tuple[Expression, ...]) -> None:
        self.is_and = is_and
        self.operands = operands

    def compile(self) -> _Eval:
        evals = tuple(operand.compile() for operand in self.operands)
        if self.is_and:
            return lambda doc: all(e(doc) is True for e in evals)
        return lambda doc: any(e(doc) is True for e in evals)

    def __repr__(self) -> str:
        name = "and_" if self.is_and else "or_"
        return f"q.{name}({', '.join(map(repr, self.operands))})"


def _operand(value: Any, op: str) -> Expression:
    if isinstance(value, Expression):
        return value
    if value is UNDEFINED:
        return _Literal(UNDEFINED)
    if isinstance(value, FilterBuilder):
        raise TypeError(f"q.{op}(): pass q.field('name') or a value, not q itself")
    check_value(value, f"q.{op}() operand")
    return _Literal(value)


def _kind(value: Any, op: str) -> type:
    if isinstance(value, Int64):
        return Int64
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float
    got = "undefined" if value is UNDEFINED else type_name(value)
    raise TypeError(f"q.{op}() operands must be numbers (float or Int64), got {got}")


def _numbers(op: str, a: Any, b: Any) -> tuple[type, Any, Any]:
    ka, kb = _kind(a, op), _kind(b, op)
    if ka is not kb:
        raise TypeError(
            f"q.{op}() cannot mix int64 and float64 operands ({a!r}, {b!r}); "
            "convert one side (Int64(...) or a float) as Convex requires"
        )
    if ka is float:
        return float, float(a), float(b)
    return Int64, int(a), int(b)


def _int64(op: str, result: int) -> Int64:
    if not -(1 << 63) <= result < (1 << 63):
        raise OverflowError(f"q.{op}(): int64 overflow ({result} is out of range)")
    return Int64(result)


def _add(a: Any, b: Any) -> Any:
    kind, x, y = _numbers("add", a, b)
    return x + y if kind is float else _int64("add", x + y)


def _sub(a: Any, b: Any) -> Any:
    kind, x, y = _numbers("sub", a, b)
    return x - y if kind is float else _int64("sub", x - y)


def _mul(a: Any, b: Any) -> Any:
    kind, x, y = _numbers("mul", a, b)
    return x * y if kind is float else _int64("mul", x * y)


def _truncated_quotient(x: int, y: int, op: str) -> int:
    if y == 0:
        raise ZeroDivisionError(f"q.{op}(): int64 division by zero")
    quotient = abs(x) // abs(y)
    return quotient if (x < 0) == (y < 0) else -quotient


def _div(a: Any, b: Any) -> Any:
    kind, x, y = _numbers("div", a, b)
    if kind is Int64:  # truncates toward zero, like Rust i64 and JS bigint
        return _int64("div", _truncated_quotient(x, y, "div"))
    if y == 0.0:  # IEEE 754, as JavaScript: x/0 is ±Infinity, 0/0 and NaN/0 are NaN
        if x == 0.0 or math.isnan(x):
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def _mod(a: Any, b: Any) -> Any:
    kind, x, y = _numbers("mod", a, b)
    if kind is Int64:  # the remainder takes the dividend's sign
        return _int64("mod", x - y * _truncated_quotient(x, y, "mod"))
    if y == 0.0 or math.isinf(x) or math.isnan(x) or math.isnan(y):
        return math.nan
    return math.fmod(x, y)


def _neg(a: Any) -> Any:
    if _kind(a, "neg") is Int64:
        return _int64("neg", -int(a))
    return -float(a)


def _not(a: Any) -> bool:
    return a is not True


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: compare_values(a, b) == 0,
    "neq": lambda a, b: compare_values(a, b) != 0,
    "lt": lambda a, b: compare_values(a, b) < 0,
    "lte": lambda a, b: compare_values(a, b) <= 0,
    "gt": lambda a, b: compare_values(a, b) > 0,
    "gte": lambda a, b: compare_values(a, b) >= 0,
}


class FilterBuilder:
    """The ``q`` passed to ``.filter(lambda q: ...)``; operands are expressions or values."""

    __slots__ = ()

    def field(self, path: str) -> Expression:
        """The value of ``path`` (``"a.b"`` reaches into nested objects); missing: UNDEFINED."""
        if not isinstance(path, str):
            raise TypeError(f"q.field() expects a field path string, got {path!r}")
        parts = tuple(path.split("."))
        if not all(parts):
            raise ValueError(f"q.field({path!r}): a field path has no empty components")
        return _Field(parts)

    def _compare(self, op: str, left: Any, right: Any) -> Expression:
        return _Call(op, _COMPARISONS[op], (_operand(left, op), _operand(right, op)))

    def eq(self, left: Any, right: Any) -> Expression:
        return self._compare("eq", left, right)

    def neq(self, left: Any, right: Any) -> Expression:
        return self._compare("neq", left, right)

    def lt(self, left: Any, right: Any) -> Expression:
        return self._compare("lt", left, right)

    def lte(self, left: Any, right: Any) -> Expression:
        return self._compare("lte", left, right)

    def gt(self, left: Any, right: Any) -> Expression:
        return self._compare("gt", left, right)

    def gte(self, left: Any, right: Any) -> Expression:
        return self._compare("gte", left, right)

    def add(self, left: Any, right: Any) -> Expression:
        return _Call("add", _add, (_operand(left, "add"), _operand(right, "add")))

    def sub(self, left: Any, right: Any) -> Expression:
        return _Call("sub", _sub, (_operand(left, "sub"), _operand(right, "sub")))

    def mul(self, left: Any, right: Any) -> Expression:
        return _Call("mul", _mul, (_operand(left, "mul"), _operand(right, "mul")))

    def div(self, left: Any, right: Any) -> Expression:
        return _Call("div", _div, (_operand(left, "div"), _operand(right, "div")))

    def mod(self, left: Any, right: Any) -> Expression:
        return _Call("mod", _mod, (_operand(left, "mod"), _operand(right, "mod")))

    def neg(self, value: Any) -> Expression:
        return _Call("neg", _neg, (_operand(value, "neg"),))

    def and_(self, *operands: Any) -> Expression:
        """True when every operand is ``True`` (``q.and_()`` is true)."""
        return _Junction(True, tuple(_operand(x, "and_") for x in operands))

    def or_(self, *operands: Any) -> Expression:
        """True when some operand is ``True`` (``q.or_()`` is false)."""
        return _Junction(False, tuple(_operand(x, "or_") for x in operands))

    def not_(self, value: Any) -> Expression:
        """True when ``value`` is anything but ``True``."""
        return _Call("not_", _not, (_operand(value, "not_"),))

    def __repr__(self) -> str:
        return "q"


# Convex spells these ``q.and``/``q.or``/``q.not``; reachable as getattr(q, "and").
setattr(FilterBuilder, "and", FilterBuilder.and_)
setattr(FilterBuilder, "or", FilterBuilder.or_)
setattr(FilterBuilder, "not", FilterBuilder.not_)

filter_builder = FilterBuilder()


def build_filter(callback: Callable[[FilterBuilder], Any]) -> Expression:
    """Call a ``.filter`` callback with ``q`` and check it built an expression (or a bool).

    Raises:
        TypeError: the callback is not callable or returned something else (e.g. ``None``).
    """
    if not callable(callback):
        raise TypeError(f".filter() expects a function of q, e.g. lambda q: ..., got {callback!r}")
    result = callback(filter_builder)
    if isinstance(result, Expression):
        return result
    if isinstance(result, bool):
        return _Literal(result)
    raise TypeError(
        f".filter() callback returned {result!r}; return an expression such as "
        "q.eq(q.field('done'), False)"
    )


def compile_filter(expressions: Sequence[Expression]) -> Predicate | None:
    """One predicate that is true when every expression is ``True``; None for no filters."""
    if not expressions:
        return None
    evals = [expression.compile() for expression in expressions]
    if len(evals) == 1:
        (one,) = evals
        return lambda doc: one(doc) is True
    return lambda doc: all(e(doc) is True for e in evals)
