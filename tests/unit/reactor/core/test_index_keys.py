"""Index keys of documents and the byte intervals of index ranges.

That the encoding orders like the Convex total order is tested in
``tests/unit/schema/test_ordering.py``; here: which fields a key is made of, and that a range's
interval holds exactly the keys of the documents the range selects.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from functions.store import Bound, IndexRange
from reactor.core.index_keys import (
    BY_CREATION_TIME,
    BY_ID,
    field_value,
    id_key,
    index_id,
    index_key,
    index_key_prefixes,
    range_interval,
)
from reactor.core.intervals import Interval
from schema.errors import ValidationError
from schema.ordering import UNDEFINED, compare_values, encode_key, encode_value
from schema.values import Int64

FIELDS = ("a", "b")
KEY_FIELDS = (*FIELDS, "_creationTime")  # what a transaction passes for a user index


def _doc(n: int = 1, **fields: Any) -> dict[str, Any]:
    return {"_id": f"id{n}", "_creationTime": float(n), **fields}


def test_index_ids_and_builtin_names() -> None:
    assert index_id("messages", "by_author") == "messages.by_author"
    assert (BY_ID, BY_CREATION_TIME) == ("by_id", "by_creation_time")


class TestFieldValue:
    def test_a_top_level_field(self) -> None:
        assert field_value({"a": 1.0}, "a") == 1.0
        assert field_value({"a": None}, "a") is None

    def test_a_missing_field_is_undefined(self) -> None:
        assert field_value({"a": 1.0}, "b") is UNDEFINED

    def test_a_dotted_path_walks_objects(self) -> None:
        doc = {"address": {"city": "Paris", "geo": {"lat": 48.8}}}

        assert field_value(doc, "address.city") == "Paris"
        assert field_value(doc, "address.geo.lat") == 48.8
        assert field_value(doc, "address.geo") == {"lat": 48.8}

    @pytest.mark.parametrize(
        "doc",
        [{}, {"address": None}, {"address": "Paris"}, {"address": ["city"]}, {"address": {}}],
    )
    def test_a_dotted_path_through_a_non_object_or_a_missing_step_is_undefined(
        self, doc: dict[str, Any]
    ) -> None:
        assert field_value(doc, "address.city") is UNDEFINED


class TestIndexKey:
    def test_an_id_key_is_the_encoded_id(self) -> None:
        assert id_key("abc") == encode_value("abc")

    def test_the_key_is_the_fields_then_creation_time_then_id(self) -> None:
        doc = _doc(3, a="x", b=Int64(5), c="ignored")

        assert index_key(doc, FIELDS) == encode_key(["x", Int64(5), 3.0, "id3"])

    def test_a_missing_field_encodes_as_undefined(self) -> None:
        assert index_key(_doc(1, b=True), FIELDS) == encode_key([UNDEFINED, True, 1.0, "id1"])

    def test_by_creation_time_has_no_user_fields(self) -> None:
        assert index_key(_doc(2, a="x"), ()) == encode_key([2.0, "id2"])

    def test_prefixes_end_at_every_element_boundary_before_the_id(self) -> None:
        doc = _doc(4, a="x", b=None)

        key, prefixes = index_key_prefixes(doc, FIELDS)

        assert key == index_key(doc, FIELDS)
        assert prefixes == [
            encode_key(["x"]),
            encode_key(["x", None]),
            encode_key(["x", None, 4.0]),
        ]

    def test_keys_sort_by_field_then_creation_time(self) -> None:
        docs = [_doc(2, a="b"), _doc(1, a="b"), _doc(9, a="a"), _doc(5)]

        ordered = sorted(docs, key=lambda d: index_key(d, ("a",)))

        assert [d["_id"] for d in ordered] == ["id5", "id9", "id1", "id2"]


class TestRangeInterval:
    def test_no_constraint_is_every_key(self) -> None:
        assert range_interval(IndexRange(), KEY_FIELDS, index="t.i") == Interval(b"", None)

    def test_an_eq_is_the_keys_extending_its_value(self) -> None:
        interval = range_interval(IndexRange(eq=(("a", "x"),)), KEY_FIELDS, index="t.i")

        assert interval.contains(index_key(_doc(1, a="x", b=1.0), FIELDS))
        assert not interval.contains(index_key(_doc(1, a="x\x00", b=1.0), FIELDS))
        assert not interval.contains(index_key(_doc(1, a="w", b=1.0), FIELDS))

    def test_a_lower_bound_above_an_upper_bound_is_empty(self) -> None:
        rng = IndexRange(lower=Bound("a", "z", True), upper=Bound("a", "b", True))

        interval = range_interval(rng, KEY_FIELDS, index="t.i")

        assert interval.is_empty

    def test_an_eq_must_be_on_the_next_field(self) -> None:
        with pytest.raises(
            ValidationError,
            match=r"^Index t\.i cannot be queried with eq\('b'\): the next indexed field is 'a'$",
        ):
            range_interval(IndexRange(eq=(("b", 1.0),)), KEY_FIELDS, index="t.i")

    def test_a_bound_must_be_on_the_field_after_the_eqs(self) -> None:
        rng = IndexRange(eq=(("a", 1.0),), lower=Bound("a", 0.0, True))

        with pytest.raises(
            ValidationError,
            match=r"cannot be queried with a range on 'a': the next indexed field is 'b'",
        ):
            range_interval(rng, KEY_FIELDS, index="t.i")

    def test_no_constraint_may_follow_the_last_field(self) -> None:
        rng = IndexRange(eq=(("a", 1.0), ("b", 2.0)), upper=Bound("c", 0.0, False))

        with pytest.raises(
            ValidationError,
            match=r"range on 'c': all of its fields are already constrained",
        ):
            range_interval(rng, FIELDS, index="t.i")


# -- every document a range selects, and no other, has its key in the range's interval --------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.builds(Int64, st.integers(-2, 2)),
    st.sampled_from([-1.5, -0.0, 0.0, 1.0, 2.5, float("inf")]),
    st.sampled_from(["", "a", "a\x00", "a\x00b", "ab", "b", "\xff"]),
    st.sampled_from([b"", b"\x00", b"\x00\x01", b"\xff"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=2))
field_or_missing = st.one_of(st.just(UNDEFINED), values)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": f"id{draw(st.integers(0, 3))}"}
    doc["_creationTime"] = draw(st.sampled_from([1.0, 2.0, 3.0]))
    for name in FIELDS:
        value = draw(field_or_missing)
        if value is not UNDEFINED:
            doc[name] = value
    return doc


@st.composite
def ranges(draw: st.DrawFn) -> IndexRange:
    eq_count = draw(st.integers(0, len(KEY_FIELDS)))
    eq = tuple((name, draw(field_or_missing)) for name in KEY_FIELDS[:eq_count])
    lower = upper = None
    if eq_count < len(KEY_FIELDS):
        name = KEY_FIELDS[eq_count]
        bound_values = st.sampled_from([1.0, 2.0, 2.5]) if name == "_creationTime" else values
        if draw(st.booleans()):
            lower = Bound(name, draw(bound_values), draw(st.booleans()))
        if draw(st.booleans()):
            upper = Bound(name, draw(bound_values), draw(st.booleans()))
    return IndexRange(eq, lower, upper)


def _selects(rng: IndexRange, doc: dict[str, Any]) -> bool:
    """The range's meaning, from the Convex total order (not from the encoding)."""
    for name, value in rng.eq:
        if compare_values(field_value(doc, name), value) != 0:
            return False
    if rng.lower is not None:
        order = compare_values(field_value(doc, rng.lower.field), rng.lower.value)
        if order < 0 or (order == 0 and not rng.lower.inclusive):
            return False
    if rng.upper is not None:
        order = compare_values(field_value(doc, rng.upper.field), rng.upper.value)
        if order > 0 or (order == 0 and not rng.upper.inclusive):
            return False
    return True


@settings(max_examples=500, deadline=None)
@given(ranges(), documents())
def test_the_interval_holds_exactly_the_keys_of_selected_documents(
    rng: IndexRange, doc: dict[str, Any]
) -> None:
    interval = range_interval(rng, KEY_FIELDS, index="t.i")

    assert interval.contains(index_key(doc, FIELDS)) == _selects(rng, doc)


@settings(max_examples=200, deadline=None)
@given(documents(), st.integers(1, len(KEY_FIELDS)))
def test_the_eq_prefix_of_a_selected_key_starts_the_interval(
    doc: dict[str, Any], eq_count: int
) -> None:
    """The write log finds eq-prefix reads by the prefixes of written keys, so the prefix of a
    selected document's key holding exactly the eq values must be where the interval starts."""
    rng = IndexRange(eq=tuple((name, field_value(doc, name)) for name in KEY_FIELDS[:eq_count]))
    interval = range_interval(rng, KEY_FIELDS, index="t.i")

    _, prefixes = index_key_prefixes(doc, FIELDS)

    assert prefixes[eq_count - 1] == interval.start
    assert interval.contains(index_key(doc, FIELDS))
