"""``reactor.errors`` is the public home of the whole error tree, and a leaf."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import reactor.errors as errors
from schema.errors import ReactorError

ROOT = Path(__file__).resolve().parents[3]


def test_every_exported_name_is_a_reactor_error() -> None:
    for name in errors.__all__:
        value = getattr(errors, name)
        assert inspect.isclass(value) and issubclass(value, ReactorError), name


def test_every_error_class_of_the_runtime_is_exported() -> None:
    """No ``ReactorError`` defined anywhere under reactor/ is missing from the public home."""
    missing = []
    for path in sorted((ROOT / "reactor").rglob("*.py")):
        module_name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if module_name.endswith("__main__") or ".mongo" in module_name:
            continue  # running the CLI; PyMongo is optional
        module = importlib.import_module(module_name.removesuffix(".__init__"))
        for node in ast.parse(path.read_text()).body:
            value = getattr(module, node.name, None) if isinstance(node, ast.ClassDef) else None
            if inspect.isclass(value) and issubclass(value, ReactorError):
                if getattr(errors, value.__name__, None) is not value:
                    missing.append(f"{module_name}.{value.__name__}")
    assert missing == []


def test_codes_are_stable_camel_case_tags() -> None:
    for name in errors.__all__:
        code = getattr(errors, name).code
        assert code[:1].isupper() and code.isalnum(), (name, code)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.AuthenticationError("no", reason="TokenExpired"), "Unauthenticated"),
        (errors.AuthConfigError("is required", index=1, field="domain"), "AuthConfigInvalid"),
        (errors.BlobTooLarge(10), "FileTooLarge"),
        (errors.QuerySetVersionMismatch("base"), "BaseVersionMismatch"),
        (errors.IdentityVersionMismatch("base"), "InternalServerError"),
        (
            errors.SchemaDriftError("x", table="t", document_id="i", path="$"),
            "SchemaValidationFailed",
        ),
    ],
)
def test_runtime_errors_carry_their_codes(error: ReactorError, code: str) -> None:
    assert error.code == code


def test_structured_attributes() -> None:
    assert str(errors.AuthConfigError("is required", index=1, field="domain")) == (
        "Provider at index 1: `domain` is required"
    )
    assert errors.AuthenticationError("no", reason="TokenExpired").reason == "TokenExpired"
    assert errors.BlobTooLarge(10).limit == 10
    assert errors.InternalSessionError("x").close_code == 1011
    assert not errors.InternalSessionError.sends_fatal_error
    assert errors.MalformedClientMessage("x").close_code is None


def test_schema_drift_is_a_schema_error_with_its_place() -> None:
    """Raised by ``reactor.engine.schema_check``, defined in ``schema.errors``; public here."""
    from reactor.engine import schema_check

    assert errors.SchemaDriftError is schema_check.SchemaDriftError
    error = errors.SchemaDriftError("bad", table="tasks", document_id="abc", path="$.owner")
    assert isinstance(error, errors.SchemaError)
    assert (error.table, error.document_id, error.path, str(error)) == (
        "tasks",
        "abc",
        "$.owner",
        "bad",
    )
