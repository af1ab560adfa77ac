"""Typed function references (what `reactor codegen --python` declares): the path a call sends,
and a reference of the wrong kind refused before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest

from client_sdk import ActionReference, MutationReference, NoArgs, QueryReference
from client_sdk.references import FunctionReference, reference_path


def test_a_reference_sends_its_path_and_a_string_is_sent_as_given() -> None:
    listing = QueryReference[[NoArgs], list[Any]]("tasks:list")
    assert reference_path(listing, "query") == "tasks:list"
    assert reference_path("tasks:list", "query") == "tasks:list"
    assert repr(listing) == "QueryReference('tasks:list')"
    assert listing == QueryReference("tasks:list") and hash(listing) == hash(
        QueryReference("tasks:list")
    )
    assert listing != MutationReference("tasks:list")


@pytest.mark.parametrize(
    ("reference", "kind", "message"),
    [
        (
            MutationReference("tasks:add"),
            "query",
            "MutationReference\\('tasks:add'\\) is a mutation",
        ),
        (QueryReference("tasks:list"), "action", "is a query, not an action"),
        (ActionReference("x:y"), "mutation", "is an action, not a mutation"),
    ],
)
def test_a_reference_of_another_kind_is_refused(
    reference: FunctionReference[Any, Any], kind: str, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        reference_path(reference, kind)


def test_bad_references() -> None:
    with pytest.raises(TypeError, match="needs a function path"):
        QueryReference("")
    with pytest.raises(TypeError, match="Expected a function path or a function reference"):
        reference_path(42, "query")  # type: ignore[arg-type]
