"""The pure generators of ``reactor codegen``: the validator -> TypeScript and Python type
mappings, nested module paths, internal functions, tables with system fields, determinism
and the errors for apps no API can describe. (The CLI, tsc and mypy runs are in
tests/e2e/test_codegen.py.)"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from functions.loader import load_app
from reactor.codegen import api_functions, generated_files, python_module, validator_type
from reactor.codegen.typescript import api_dts, data_model_dts
from reactor.errors import CodegenError
from schema import define_schema, define_table, v
from schema.values import Int64

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("validator", "expected"),
    [
        (v.string(), "string"),
        (v.number(), "number"),
        (v.int64(), "bigint"),
        (v.boolean(), "boolean"),
        (v.null(), "null"),
        (v.bytes(), "ArrayBuffer"),
        (v.any(), "any"),
        (v.id("tasks"), 'Id<"tasks">'),
        (v.literal("todo"), '"todo"'),
        (v.literal(3), "3"),
        (v.literal(2.5), "2.5"),
        (v.literal(True), "true"),
        (v.literal(Int64(7)), "7n"),
        (v.array(v.int64()), "Array<bigint>"),
        (v.record(v.string(), v.bytes()), "Record<string, ArrayBuffer>"),
        (v.union(v.literal("a"), v.null()), '"a" | null'),
        (
            v.object({"a": v.string(), "b": v.optional(v.id("users")), "my-key": v.number()}),
            '{ a: string; b?: Id<"users">; "my-key": number }',
        ),
        (v.object({}), "{}"),
    ],
)
def test_typescript_type_of_each_validator(validator: object, expected: str) -> None:
    assert validator_type(validator) == expected  # type: ignore[arg-type]


def _app(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text))
    return tmp_path


NESTED_APP = {
    "schema.py": """
        from schema import define_schema, define_table, v

        schema = define_schema({
            "users": define_table({"name": v.string(), "age": v.optional(v.int64())}),
            "events": define_table(v.union(
                v.object({"kind": v.literal("a"), "user": v.id("users")}),
                v.object({"kind": v.literal("b"), "tags": v.record(v.string(), v.bytes())}),
            )).index("by_kind", ["kind"]),
        })
    """,
    "admin/users.py": """
        from functions import internal_mutation, query
        from schema import v

        @query(args={"id": v.id("users")}, returns=v.union(v.string(), v.null()))
        async def name(ctx, id):
            return None

        @internal_mutation(args={"n": v.int64()})
        async def purge(ctx, n):
            return None
    """,
    "admin.py": """
        from functions import action

        @action
        async def ping(ctx):
            return "pong"
    """,
    "http.py": """
        from functions import http_action
        from functions.http_router import http_router

        @http_action
        async def hook(ctx, request):
            return None

        http = http_router()
    """,
}


def test_nested_modules_internal_functions_and_the_data_model(tmp_path: Path) -> None:
    app = load_app(_app(tmp_path, NESTED_APP))
    functions = api_functions(app.registry)
    assert [f.path for f in functions] == ["admin/users:name", "admin/users:purge", "admin:ping"]
    api = api_dts(functions)
    public = api.split("export declare const internal")[0]
    # admin.py's functions and the admin/ folder's modules share the level `admin`.
    assert (
        "export declare const api: {\n  admin: {\n"
        '    ping: FunctionReference<"action", "public", any, any>;\n'
        "    users: {\n"
        '      name: FunctionReference<"query", "public", { id: Id<"users"> }, string | null>;\n'
        "    };\n  };\n};"
    ) in public
    assert "purge" not in public
    assert (
        'purge: FunctionReference<"mutation", "internal", { n: bigint }, any>;'
        in api.split("export declare const internal")[1]
    )
    model = data_model_dts(app.schema)
    assert (
        'document: { kind: "a"; user: Id<"users">; _id: Id<"events">; _creationTime: number }'
        ' | { kind: "b"; tags: Record<string, ArrayBuffer>; _id: Id<"events">; '
        "_creationTime: number };"
    ) in model
    assert 'fieldPaths: "_creationTime" | "_id" | "kind" | "tags" | `tags.${string}` | "user";' in (
        model
    )
    assert 'by_kind: ["kind", "_creationTime"];' in model
    assert 'document: { name: string; age?: bigint; _id: Id<"users">; _creationTime: number };' in (
        model
    )
    assert "Id<TableName extends TableNames | SystemTableNames>" in model


def test_python_module_types(tmp_path: Path) -> None:
    app = load_app(_app(tmp_path, NESTED_APP))
    text = python_module(api_functions(app.registry), app.schema)
    assert "class UsersDoc(TypedDict):" in text
    assert "    age: NotRequired[Int64]" in text
    assert '    kind: Literal["b"]' in text
    assert "    tags: dict[str, bytes]" in text
    assert "name: QueryReference[[AdminUsersNameArgs], str | None] = QueryReference(" in text
    assert 'ping: ActionReference[[AnyArgs], Any] = ActionReference("admin:ping")' in text
    assert "class _api_admin_users:" in text
    assert "class internal:" in text
    compile(text, "api.py", "exec")


def test_output_is_deterministic_and_sorted(tmp_path: Path) -> None:
    directory = _app(tmp_path, NESTED_APP)
    first = generated_files(load_app(directory), out=Path("ts"), python=Path("api.py"))
    second = generated_files(load_app(directory), out=Path("ts"), python=Path("api.py"))
    assert first == second
    assert sorted(first) == [
        Path("api.py"),
        Path("ts/api.d.ts"),
        Path("ts/api.js"),
        Path("ts/dataModel.d.ts"),
    ]


def test_an_ambiguous_function_name_is_refused(tmp_path: Path) -> None:
    app = load_app(
        _app(
            tmp_path,
            {
                "a.py": """
                    from functions import query

                    @query
                    async def b(ctx):
                        return 1
                """,
                "a/b.py": """
                    from functions import query

                    @query
                    async def c(ctx):
                        return 1
                """,
            },
        )
    )
    with pytest.raises(CodegenError, match="Ambiguous function name: .*`b`"):
        api_dts(api_functions(app.registry))


def test_no_schema_and_untyped_tables() -> None:
    assert "export type Doc = any;" in data_model_dts(None)
    loose = define_schema({"t": define_table(v.any())}, schema_validation=False)
    model = data_model_dts(loose)
    assert "    document: any;" in model and "} & AnyDataModel;" in model
