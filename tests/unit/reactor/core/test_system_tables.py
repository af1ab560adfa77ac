"""TableRegistry: table names and their numbers, which ids encode and which never change."""

from __future__ import annotations

from typing import Any

import pytest

from reactor.core.system_tables import (
    FIRST_USER_TABLE_NUMBER,
    SYSTEM_TABLES,
    TableRegistry,
    is_system_table,
)
from schema.errors import ValidationError
from schema.ids import encode_id, new_internal_id


def _id(table_number: int) -> str:
    return encode_id(table_number, new_internal_id())


@pytest.mark.parametrize(
    ("name", "expected"),
    [("_storage", True), ("_anything", True), ("messages", False), ("m_", False)],
)
def test_is_system_table_by_leading_underscore(name: str, expected: bool) -> None:
    assert is_system_table(name) is expected


class TestCheckName:
    @pytest.mark.parametrize("name", ["a", "Messages", "user_profiles2", "x" * 64])
    def test_valid_names_pass(self, name: str) -> None:
        TableRegistry.check_name(name)

    @pytest.mark.parametrize(
        "name", ["", "_storage", "2fast", "has space", "dash-ed", "é", "x" * 65]
    )
    def test_invalid_names_are_refused(self, name: str) -> None:
        with pytest.raises(ValidationError, match=r"Invalid table name .*start with a letter"):
            TableRegistry.check_name(name)

    def test_a_trailing_newline_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="Invalid table name"):
            TableRegistry.check_name("messages\n")

    @pytest.mark.parametrize("name", [None, 3, b"bytes"])
    def test_non_strings_are_refused(self, name: Any) -> None:
        with pytest.raises(ValidationError, match="Invalid table name"):
            TableRegistry.check_name(name)


class TestNumbers:
    def test_system_tables_have_their_fixed_numbers(self) -> None:
        registry = TableRegistry()

        assert SYSTEM_TABLES == {"_scheduled_functions": 1, "_storage": 2}
        for name, number in SYSTEM_TABLES.items():
            assert registry.number_for(name) == number
            assert registry.name_for(number) == name
        assert registry.unpersisted() == {}

    def test_user_tables_are_numbered_from_the_first_user_number_in_order(self) -> None:
        registry = TableRegistry()

        first = registry.number_for("messages")
        second = registry.number_for("users")

        assert (first, second) == (FIRST_USER_TABLE_NUMBER, FIRST_USER_TABLE_NUMBER + 1)
        assert registry.number_for("messages") == first
        assert registry.name_for(first) == "messages"
        assert registry.name_for(second) == "users"

    def test_known_numbers_are_kept_and_new_ones_come_after_the_largest(self) -> None:
        registry = TableRegistry({"old": 10_005, "older": 10_002})

        assert registry.number_for("old") == 10_005
        assert registry.number_for("new") == 10_006
        assert registry.unpersisted() == {"new": 10_006}

    def test_a_stored_number_cannot_override_a_system_table(self) -> None:
        registry = TableRegistry({"_storage": 99})

        assert registry.number_for("_storage") == 2

    def test_an_unknown_number_has_no_name(self) -> None:
        assert TableRegistry().name_for(FIRST_USER_TABLE_NUMBER) is None


class TestPersistence:
    def test_new_tables_stay_unpersisted_until_marked(self) -> None:
        registry = TableRegistry()
        registry.number_for("a")
        registry.number_for("b")

        assert registry.unpersisted() == {"a": 10_001, "b": 10_002}

        registry.mark_persisted({"a": 10_001})

        assert registry.unpersisted() == {"b": 10_002}
        assert registry.number_for("a") == 10_001

    def test_unpersisted_returns_a_copy(self) -> None:
        registry = TableRegistry()
        registry.number_for("a")

        registry.unpersisted().clear()

        assert registry.unpersisted() == {"a": 10_001}

    def test_marking_an_unknown_table_is_a_no_op(self) -> None:
        registry = TableRegistry()
        registry.number_for("a")

        registry.mark_persisted({"zzz": 1})

        assert registry.unpersisted() == {"a": 10_001}

    def test_tables_loaded_from_storage_are_not_unpersisted(self) -> None:
        assert TableRegistry({"a": 10_001}).unpersisted() == {}


class TestTableOfId:
    def test_an_id_names_the_table_of_its_number(self) -> None:
        registry = TableRegistry()
        number = registry.number_for("messages")

        assert registry.table_of_id(_id(number)) == "messages"
        assert registry.table_of_id(_id(2)) == "_storage"

    def test_an_id_of_an_unknown_table_has_none(self) -> None:
        assert TableRegistry().table_of_id(_id(12_345)) is None

    @pytest.mark.parametrize("text", ["", "not an id", "x" * 32])
    def test_a_malformed_id_has_none(self, text: str) -> None:
        assert TableRegistry().table_of_id(text) is None

    def test_the_same_id_resolves_per_registry(self) -> None:
        document_id = _id(FIRST_USER_TABLE_NUMBER)
        first, second = TableRegistry(), TableRegistry()
        first.number_for("messages")
        second.number_for("users")

        assert first.table_of_id(document_id) == "messages"
        assert second.table_of_id(document_id) == "users"
