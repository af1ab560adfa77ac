"""Filter expressions: Convex total order, missing fields, arithmetic, boolean logic."""

from __future__ import annotations

import math
from typing import Any

import pytest

from functions import UNDEFINED as STORE_UNDEFINED
from functions.filters import FilterBuilder, build_filter, compile_filter, filter_builder as q
from schema.errors import ValidationError
from schema.ordering import UNDEFINED
from schema.values import Int64


def holds(callback: Any, doc: dict[str, Any]) -> bool:
    predicate = compile_filter([build_filter(callback)])
    assert predicate is not None
    return predicate(doc)


def value_of(expression: Any, doc: dict[str, Any] | None = None) -> Any:
    return expression.compile()(doc or {})


DOC = {"n": 3.0, "big": Int64(7), "s": "abc", "flag": True, "nil": None, "o": {"a": {"b": 1.0}}}


class TestFields:
    def test_top_level_and_nested(self) -> None:
        assert value_of(q.field("n"), DOC) == 3.0
        assert value_of(q.field("o.a.b"), DOC) == 1.0
        assert value_of(q.field("o.a"), DOC) == {"b": 1.0}

    @pytest.mark.parametrize("path", ["missing", "o.missing", "o.a.b.c", "s.x", "nil.x"])
    def test_missing_fields_are_undefined(self, path: str) -> None:
        assert value_of(q.field(path), DOC) is UNDEFINED

    def test_bad_paths(self) -> None:
        with pytest.raises(ValueError, match="no empty components"):
            q.field("a..b")
        with pytest.raises(TypeError, match="field path string"):
            q.field(3)  # type: ignore[arg-type]


class TestComparisons:
    def test_same_type(self) -> None:
        assert holds(lambda q: q.eq(q.field("n"), 3), DOC)  # a plain int is a float64
        assert holds(lambda q: q.neq(q.field("n"), 4.0), DOC)
        assert holds(lambda q: q.lt(q.field("s"), "abd"), DOC)
        assert holds(lambda q: q.lte(q.field("n"), 3.0), DOC)
        assert holds(lambda q: q.gt(q.field("big"), Int64(6)), DOC)
        assert holds(lambda q: q.gte(q.field("o"), {"a": {"b": 1.0}}), DOC)

    def test_cross_type_total_order(self) -> None:
        # undefined < null < int64 < float64 < boolean < string < bytes < array < object
        order = [UNDEFINED, None, Int64(100), -5.0, False, True, "", b"", [], {}]
        for lower, higher in zip(order, order[1:], strict=False):
            assert value_of(q.lt(lower, higher)), (lower, higher)
            assert not value_of(q.gte(lower, higher)), (lower, higher)
        assert not value_of(q.eq(Int64(1), 1.0))
        assert value_of(q.neq(Int64(1), 1.0))

    def test_floats_compare_in_the_total_order(self) -> None:
        assert value_of(q.eq(math.nan, math.nan))
        assert value_of(q.lt(-0.0, 0.0))
        assert value_of(q.gt(math.nan, math.inf))

    def test_missing_field_sorts_before_null(self) -> None:
        assert holds(lambda q: q.lt(q.field("missing"), None), DOC)
        assert holds(lambda q: q.eq(q.field("missing"), STORE_UNDEFINED), DOC)
        assert holds(lambda q: q.eq(q.field("missing"), UNDEFINED), DOC)
        assert not holds(lambda q: q.eq(q.field("nil"), UNDEFINED), DOC)
        assert holds(lambda q: q.eq(q.field("nil"), None), DOC)
        assert not holds(lambda q: q.eq(q.field("missing"), None), DOC)

    def test_stored_store_undefined_reads_as_missing(self) -> None:
        assert holds(lambda q: q.eq(q.field("x"), UNDEFINED), {"x": STORE_UNDEFINED})

    def test_literals_must_be_convex_values(self) -> None:
        with pytest.raises(ValidationError, match="not a supported Convex value"):
            q.eq(q.field("n"), object())
        with pytest.raises(TypeError, match="not q itself"):
            q.eq(q, 1)


class TestArithmetic:
    def test_float_arithmetic(self) -> None:
        assert value_of(q.add(q.field("n"), 1.5), DOC) == 4.5
        assert value_of(q.sub(q.field("n"), 1), DOC) == 2.0
        assert value_of(q.mul(q.field("n"), 2), DOC) == 6.0
        assert value_of(q.div(q.field("n"), 2), DOC) == 1.5
        assert value_of(q.mod(-7.0, 3.0)) == -1.0
        assert value_of(q.neg(q.field("n")), DOC) == -3.0
        assert holds(lambda q: q.eq(q.mod(q.field("n"), 2), 1), DOC)

    def test_float_division_follows_ieee(self) -> None:
        assert value_of(q.div(1.0, 0.0)) == math.inf
        assert value_of(q.div(-1.0, 0.0)) == -math.inf
        assert value_of(q.div(1.0, -0.0)) == -math.inf
        assert math.isnan(value_of(q.div(0.0, 0.0)))
        assert math.isnan(value_of(q.mod(1.0, 0.0)))
        assert math.isnan(value_of(q.mod(math.inf, 2.0)))

    def test_int64_stays_int64(self) -> None:
        for expression, expected in [
            (q.add(q.field("big"), Int64(1)), 8),
            (q.sub(Int64(1), q.field("big")), -6),
            (q.mul(q.field("big"), Int64(3)), 21),
            (q.div(Int64(-7), Int64(2)), -3),  # truncates toward zero
            (q.mod(Int64(-7), Int64(2)), -1),  # sign of the dividend
            (q.mod(Int64(7), Int64(-2)), 1),
            (q.neg(q.field("big")), -7),
        ]:
            result = value_of(expression, DOC)
            assert type(result) is Int64 and result == expected, expression

    def test_int64_errors(self) -> None:
        with pytest.raises(ZeroDivisionError, match="division by zero"):
            value_of(q.div(Int64(1), Int64(0)))
        with pytest.raises(ZeroDivisionError):
            value_of(q.mod(Int64(1), Int64(0)))
        with pytest.raises(OverflowError, match="int64 overflow"):
            value_of(q.add(Int64(2**63 - 1), Int64(1)))
        with pytest.raises(OverflowError):
            value_of(q.neg(Int64(-(2**63))))

    def test_mixing_int64_and_float64_is_an_error(self) -> None:
        with pytest.raises(TypeError, match="cannot mix int64 and float64"):
            value_of(q.add(q.field("big"), 1.0), DOC)
        with pytest.raises(TypeError, match="cannot mix"):
            value_of(q.mul(q.field("n"), Int64(2)), DOC)

    @pytest.mark.parametrize("operand", ["x", True, None, [1.0]])
    def test_non_numbers_are_an_error(self, operand: Any) -> None:
        with pytest.raises(TypeError, match="q.add\\(\\) operands must be numbers"):
            value_of(q.add(operand, 1.0))

    def test_missing_field_in_arithmetic(self) -> None:
        with pytest.raises(TypeError, match="got undefined"):
            value_of(q.add(q.field("missing"), 1.0), DOC)


class TestLogic:
    def test_and_or_not(self) -> None:
        assert holds(lambda q: q.and_(q.eq(q.field("flag"), True), q.gt(q.field("n"), 2)), DOC)
        assert not holds(lambda q: q.and_(q.field("flag"), q.gt(q.field("n"), 5)), DOC)
        assert holds(lambda q: q.or_(q.gt(q.field("n"), 5), q.field("flag")), DOC)
        assert holds(lambda q: q.not_(q.eq(q.field("s"), "x")), DOC)
        assert holds(lambda q: q.and_(), DOC) and not holds(lambda q: q.or_(), DOC)

    def test_only_true_is_true(self) -> None:
        assert not holds(lambda q: q.field("n"), DOC)  # a number is not true
        assert not holds(lambda q: q.field("missing"), DOC)
        assert not holds(lambda q: q.and_(q.field("s")), DOC)
        assert holds(lambda q: q.not_(q.field("missing")), DOC)

    def test_convex_spellings(self) -> None:
        expression = getattr(q, "and")(True, getattr(q, "not")(False))
        assert value_of(expression) is True
        assert value_of(getattr(q, "or")(False, False)) is False

    def test_short_circuit(self) -> None:
        # The second operand would raise; and_/or_ stop before evaluating it.
        bad = q.eq(q.add("x", 1.0), 1.0)
        assert value_of(q.and_(False, bad)) is False
        assert value_of(q.or_(True, bad)) is True


class TestExpressionMisuse:
    def test_python_operators_are_refused(self) -> None:
        with pytest.raises(TypeError, match="q.eq"):
            q.field("a") == 1  # noqa: B015
        with pytest.raises(TypeError, match="q.neq"):
            q.field("a") != 1  # noqa: B015
        with pytest.raises(TypeError, match="not a Python boolean"):
            bool(q.field("a"))
        with pytest.raises(TypeError, match="not a Python boolean"):
            q.field("a") and q.field("b")

    def test_build_filter(self) -> None:
        with pytest.raises(TypeError, match="expects a function of q"):
            build_filter(3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="returned 'x'"):
            build_filter(lambda q: "x")
        assert compile_filter([]) is None

    def test_several_filters_and_together(self) -> None:
        predicate = compile_filter(
            [build_filter(lambda q: q.gt(q.field("n"), 1)), build_filter(lambda q: q.field("flag"))]
        )
        assert predicate is not None and predicate(DOC)
        assert not predicate({**DOC, "flag": False})

    def test_repr(self) -> None:
        expression = q.and_(q.eq(q.field("a.b"), 1.0), q.not_(q.field("c")))
        assert repr(expression) == "q.and_(q.eq(q.field('a.b'), 1.0), q.not_(q.field('c')))"
        assert repr(FilterBuilder()) == "q"
