"""Deployment environment variables: name and value rules, limits, and the ``ctx.env`` view."""

from __future__ import annotations

from typing import Any

import pytest

from reactor.platform.env_vars import (
    MAX_NAME_LEN,
    MAX_TOTAL_BYTES,
    MAX_VALUE_BYTES,
    MAX_VARS,
    EnvironmentVariables,
    check_name,
    check_value,
)
from schema.errors import ValidationError

SYSTEM = {"CONVEX_CLOUD_URL": "http://127.0.0.1:3210", "CONVEX_SITE_URL": "http://127.0.0.1:3211"}


class TestCheckName:
    @pytest.mark.parametrize("name", ["A", "api_key", "Key2", "x" * MAX_NAME_LEN])
    def test_valid_names_are_returned(self, name: str) -> None:
        assert check_name(name) == name

    @pytest.mark.parametrize("name", ["", "_KEY", "2KEY", "MY-KEY", "MY KEY", "CL\u00c9", "K\nX"])
    def test_names_must_be_a_letter_then_letters_digits_underscores(self, name: str) -> None:
        with pytest.raises(ValidationError, match="Invalid environment variable name"):
            check_name(name)

    def test_a_trailing_newline_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="Invalid environment variable name"):
            check_name("API_KEY\n")

    @pytest.mark.parametrize("name", [None, 5, b"KEY"])
    def test_names_must_be_strings(self, name: Any) -> None:
        with pytest.raises(ValidationError, match="Invalid environment variable name"):
            check_name(name)

    def test_names_are_at_most_the_length_limit(self) -> None:
        with pytest.raises(ValidationError, match=f"longer than {MAX_NAME_LEN} characters"):
            check_name("x" * (MAX_NAME_LEN + 1))

    @pytest.mark.parametrize("name", ["CONVEX_CLOUD_URL", "CONVEX_SITE_URL"])
    def test_the_deployment_s_own_names_are_refused(self, name: str) -> None:
        with pytest.raises(ValidationError, match=f"^{name} is set by the deployment"):
            check_name(name)


class TestCheckValue:
    @pytest.mark.parametrize("value", ["", "v", "x" * MAX_VALUE_BYTES])
    def test_valid_values_are_returned(self, value: str) -> None:
        assert check_value("K", value) == value

    @pytest.mark.parametrize("value", [None, 1, b"bytes"])
    def test_values_must_be_strings(self, value: Any) -> None:
        with pytest.raises(ValidationError, match="^The value of K must be a string$"):
            check_value("K", value)

    def test_the_limit_is_in_utf8_bytes(self) -> None:
        value = "\u00e9" * (MAX_VALUE_BYTES // 2 + 1)

        with pytest.raises(
            ValidationError,
            match=f"^The value of K is {MAX_VALUE_BYTES + 2} bytes, more than the limit",
        ):
            check_value("K", value)


class TestMapping:
    def test_an_empty_set(self) -> None:
        env = EnvironmentVariables()

        assert len(env) == 0
        assert dict(env) == {}
        assert "K" not in env

    def test_user_and_system_variables_are_both_visible(self) -> None:
        env = EnvironmentVariables({"API_KEY": "secret"}, system=SYSTEM)

        assert env["API_KEY"] == "secret"
        assert env["CONVEX_CLOUD_URL"] == SYSTEM["CONVEX_CLOUD_URL"]
        assert list(env) == ["CONVEX_CLOUD_URL", "CONVEX_SITE_URL", "API_KEY"]
        assert len(env) == 3
        assert env.get("MISSING") is None

    def test_a_missing_name_raises_key_error(self) -> None:
        with pytest.raises(KeyError, match="MISSING"):
            EnvironmentVariables({"A": "1"})["MISSING"]

    def test_a_system_variable_hides_a_stored_one_of_the_same_name(self) -> None:
        env = EnvironmentVariables({"CONVEX_CLOUD_URL": "stale", "A": "1"}, system=SYSTEM)

        assert env["CONVEX_CLOUD_URL"] == SYSTEM["CONVEX_CLOUD_URL"]
        assert list(env) == ["CONVEX_CLOUD_URL", "CONVEX_SITE_URL", "A"]
        assert len(env) == 3

    def test_user_values_exclude_system_ones_and_are_a_copy(self) -> None:
        env = EnvironmentVariables({"A": "1"}, system=SYSTEM)

        env.user_values["B"] = "2"

        assert env.user_values == {"A": "1"}

    def test_the_given_mapping_is_copied(self) -> None:
        values = {"A": "1"}
        env = EnvironmentVariables(values)

        values["A"] = "changed"

        assert env["A"] == "1"


class TestWithChanges:
    def test_changes_make_a_new_set_and_leave_the_old_one(self) -> None:
        env = EnvironmentVariables({"A": "1", "B": "2"}, system=SYSTEM)

        changed = env.with_changes({"A": "10", "B": None, "C": "3"})

        assert changed.user_values == {"A": "10", "C": "3"}
        assert changed["CONVEX_SITE_URL"] == SYSTEM["CONVEX_SITE_URL"]
        assert env.user_values == {"A": "1", "B": "2"}

    def test_removing_a_missing_name_is_a_no_op(self) -> None:
        assert EnvironmentVariables({"A": "1"}).with_changes({"B": None}).user_values == {"A": "1"}

    def test_every_name_and_value_is_checked(self) -> None:
        env = EnvironmentVariables({"A": "1"})

        with pytest.raises(ValidationError, match="Invalid environment variable name '1X'"):
            env.with_changes({"OK": "v", "1X": "v"})
        with pytest.raises(ValidationError, match="The value of B must be a string"):
            env.with_changes({"B": 5})  # type: ignore[dict-item]
        with pytest.raises(ValidationError, match="CONVEX_CLOUD_URL is set by the deployment"):
            env.with_changes({"CONVEX_CLOUD_URL": None})

    def test_the_number_of_variables_is_limited(self) -> None:
        full = EnvironmentVariables({f"V{n}": "" for n in range(MAX_VARS)})

        assert len(full.with_changes({"V0": "changed"})) == MAX_VARS
        with pytest.raises(ValidationError, match=f"^At most {MAX_VARS} environment variables"):
            full.with_changes({"ONE_MORE": ""})

    def test_the_total_size_is_limited(self) -> None:
        big = "x" * MAX_VALUE_BYTES
        count = MAX_TOTAL_BYTES // (MAX_VALUE_BYTES + 4)  # names "Vnnn" are 4 bytes or fewer
        env = EnvironmentVariables().with_changes({f"V{n:03}": big for n in range(count)})

        with pytest.raises(ValidationError, match=f"more than {MAX_TOTAL_BYTES}$") as caught:
            env.with_changes({"MORE": big})

        assert caught.value.args[0].startswith("Environment variables take ")
