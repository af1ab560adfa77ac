"""load_app: discovery, private package, relative imports, schema isolation, reload, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import schema as real_schema
from functions import (
    App,
    FunctionDefinitionError,
    FunctionKind,
    ModuleLoadError,
    Visibility,
    load_app,
)
from functions.loader import package_name
from schema.errors import FunctionNotFound, SchemaError
from schema.tables import SchemaDefinition

BASIC = Path(__file__).parent / "apps" / "basic"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


QUERY = """\
from functions import query

@query
async def {name}(ctx):
    return "{name}"
"""
QUERY_A = QUERY.format(name="a")


@pytest.fixture
def basic() -> App:
    return load_app(BASIC)


class TestBasicApp:
    def test_registry(self, basic: App) -> None:
        assert basic.registry.paths() == [
            "admin/users:audit",
            "admin/users:default",
            "tasks:add",
            "tasks:default",
            "tasks:everything",
            "tasks:list",
            "tasks:purge",
            "tasks:shared_query",
        ]
        listed = basic.registry.resolve("tasks:list", kind=FunctionKind.QUERY)
        assert listed.__name__ == "list_tasks" and listed.path == "tasks:list"
        assert (
            basic.registry.resolve("tasks.js:add", kind=FunctionKind.MUTATION).path == "tasks:add"
        )
        assert basic.registry.resolve("admin/users").path == "admin/users:default"
        purge = basic.registry.resolve("tasks:purge", allow_internal=True)
        assert purge.visibility is Visibility.INTERNAL
        with pytest.raises(FunctionNotFound, match="Could not find public function"):
            basic.registry.resolve("tasks:purge")

    def test_the_module_attribute_is_the_registered_spec(self, basic: App) -> None:
        tasks = basic.modules["tasks"]
        assert tasks.list_tasks is basic.registry.resolve("tasks:list")
        assert tasks.list_tasks.path == "tasks:list"  # usable as a function reference
        alias = basic.registry.resolve("tasks:everything")
        assert alias.handler is tasks.default.handler and tasks.default.path == "tasks:default"

    def test_private_package_and_modules(self, basic: App) -> None:
        assert basic.directory == BASIC.resolve()
        assert basic.package == package_name(BASIC.resolve())
        assert basic.package.startswith("_reactor_app_")
        assert set(basic.modules) == {"schema", "tasks", "admin/users", "lib/text"}
        assert basic.modules["admin/users"].__name__ == f"{basic.package}.admin.users"
        assert sys.modules[f"{basic.package}.tasks"] is basic.modules["tasks"]
        assert "tasks" not in sys.modules and "admin" not in sys.modules
        assert str(BASIC) not in sys.path and str(BASIC.resolve()) not in sys.path

    def test_relative_imports_share_modules(self, basic: App) -> None:
        users = basic.modules["admin/users"]
        assert users.tasks is basic.modules["tasks"]
        assert basic.modules["tasks"].shout("x") == "X"

    def test_the_apps_schema_does_not_shadow_the_schema_package(self, basic: App) -> None:
        assert sys.modules["schema"] is real_schema
        assert isinstance(basic.schema, SchemaDefinition)
        assert basic.schema is basic.modules["schema"].schema
        assert basic.modules["schema"].MARKER == "the basic app's schema.py"
        assert basic.schema.index_fields("tasks", "by_owner") == ("owner",)
        # The app's modules got the real package from `from schema import v`.
        assert basic.modules["tasks"].v is real_schema.v

    def test_special_files_are_remembered_not_scanned(self, basic: App) -> None:
        assert basic.special_files == {
            "crons": BASIC.resolve() / "crons.py",
            "http": BASIC.resolve() / "http.py",
        }
        assert "crons:tick" not in basic.registry and "crons" not in basic.modules
        crons = basic.import_module("crons")
        assert crons.JOBS == ["tick"] and basic.import_module("crons") is crons
        with pytest.raises(ModuleLoadError, match="nope.py does not exist"):
            basic.import_module("nope")


def test_loading_in_a_subprocess_from_inside_the_app_directory() -> None:
    """As `python -m reactor` run inside the app: cwd is the app and sys.path[0] holds it."""
    script = textwrap.dedent(
        f"""
        import importlib.util, json, sys
        sys.path.insert(0, {str(BASIC)!r})
        shadow = importlib.util.find_spec("schema").origin
        import functions
        import schema
        app = functions.load_app(".")
        print(json.dumps({{
            "shadow": shadow,
            "schema_package": schema.__file__,
            "app_schema_marker": app.modules["schema"].MARKER,
            "app_schema_tables": sorted(app.schema.tables),
            "paths": app.registry.paths(),
            "v_is_real": app.modules["tasks"].v is schema.v,
        }}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=BASIC, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # Without the guard, `import schema` would have found the app's schema.py.
    assert report["shadow"] == str(BASIC / "schema.py")
    assert report["schema_package"] == str(Path(real_schema.__file__))
    assert report["app_schema_marker"] == "the basic app's schema.py"
    assert report["app_schema_tables"] == ["tasks"]
    assert "tasks:list" in report["paths"] and report["v_is_real"] is True


class TestReload:
    def test_reload_gives_fresh_modules_and_sees_edits_at_once(self, tmp_path: Path) -> None:
        write(tmp_path, {"tasks.py": QUERY_A, "old.py": QUERY_A})
        first = load_app(tmp_path)
        assert first.registry.paths() == ["old:a", "tasks:a"]
        # Same size, same second: a stale .pyc would hide this edit.
        (tmp_path / "tasks.py").write_text(QUERY.format(name="b"))
        (tmp_path / "old.py").unlink()
        second = load_app(tmp_path)
        assert second.registry.paths() == ["tasks:b"]
        assert second.modules["tasks"] is not first.modules["tasks"]
        assert f"{second.package}.old" not in sys.modules
        assert not (tmp_path / "__pycache__").exists()
        # The old app keeps working with its own modules.
        assert first.registry.resolve("tasks:a").path == "tasks:a"

    def test_two_apps_do_not_collide(self, tmp_path: Path) -> None:
        one = load_app(write(tmp_path / "one", {"tasks.py": QUERY_A}))
        two = load_app(write(tmp_path / "two", {"tasks.py": QUERY.format(name="z")}))
        assert one.package != two.package
        assert one.registry.paths() == ["tasks:a"] and two.registry.paths() == ["tasks:z"]

    def test_a_failed_load_leaves_no_modules_behind(self, tmp_path: Path) -> None:
        write(tmp_path, {"a.py": QUERY_A, "b.py": "raise ValueError('nope')\n"})
        with pytest.raises(ModuleLoadError):
            load_app(tmp_path)
        package = package_name(tmp_path.resolve())
        assert not [name for name in sys.modules if name.startswith(package)]


class TestErrors:
    def test_import_error_names_the_file_and_line(self, tmp_path: Path) -> None:
        write(
            tmp_path,
            {
                "tasks.py": "from .lib import helper\n",
                "lib/helper.py": "x = 1\ny = 1 / 0\n",
            },
        )
        with pytest.raises(ModuleLoadError) as info:
            load_app(tmp_path)
        message = str(info.value)
        assert "Failed to import lib/helper.py" in message or "Failed to import tasks.py" in message
        assert "(at lib/helper.py:2)" in message and "ZeroDivisionError" in message
        assert info.value.file is not None and info.value.file.endswith(".py")
        assert isinstance(info.value.__cause__, ZeroDivisionError)

    def test_syntax_error(self, tmp_path: Path) -> None:
        write(tmp_path, {"broken.py": "def f(:\n"})
        with pytest.raises(ModuleLoadError, match=r"broken.py \(at broken.py:1\): SyntaxError"):
            load_app(tmp_path)

    def test_bad_module_names(self, tmp_path: Path) -> None:
        write(tmp_path, {"my-tasks.py": QUERY_A})
        with pytest.raises(ModuleLoadError, match="'my-tasks' may only contain letters"):
            load_app(tmp_path)

    def test_bad_directory_names(self, tmp_path: Path) -> None:
        write(tmp_path, {"v1.2/tasks.py": QUERY_A})
        with pytest.raises(ModuleLoadError, match="'v1.2' may only contain"):
            load_app(tmp_path)

    def test_module_file_and_dunder_init_of_one_name(self, tmp_path: Path) -> None:
        write(tmp_path, {"admin.py": QUERY_A, "admin/__init__.py": "", "admin/users.py": ""})
        with pytest.raises(ModuleLoadError, match="admin.py and admin/__init__.py both define"):
            load_app(tmp_path)

    def test_duplicate_paths(self, tmp_path: Path) -> None:
        source = QUERY_A + "\n@query(name='a')\nasync def b(ctx):\n    return 'b'\n"
        write(tmp_path, {"tasks.py": source})
        with pytest.raises(FunctionDefinitionError, match="'tasks:a' \\(tasks.py: b\\)"):
            load_app(tmp_path)

    def test_missing_directory(self, tmp_path: Path) -> None:
        with pytest.raises(ModuleLoadError, match="does not exist"):
            load_app(tmp_path / "nope")

    def test_schema_py_without_schema(self, tmp_path: Path) -> None:
        write(tmp_path, {"schema.py": "tables = {}\n"})
        with pytest.raises(SchemaError, match="must define `schema = define_schema"):
            load_app(tmp_path)

    def test_schema_of_the_wrong_type(self, tmp_path: Path) -> None:
        write(tmp_path, {"schema.py": "schema = {'tasks': None}\n"})
        with pytest.raises(SchemaError, match="result of define_schema\\(...\\), got dict"):
            load_app(tmp_path)

    def test_schema_py_that_fails(self, tmp_path: Path) -> None:
        write(
            tmp_path,
            {
                "schema.py": """\
                    from schema import define_schema, define_table, v
                    schema = define_schema({"_bad": define_table({"a": v.string()})})
                    """
            },
        )
        with pytest.raises(SchemaError, match="Failed to import schema.py .*SchemaError"):
            load_app(tmp_path)

    def test_app_without_schema(self, tmp_path: Path) -> None:
        app = load_app(write(tmp_path, {"tasks.py": QUERY_A}))
        assert app.schema is None and app.special_files == {}


def test_dunder_init_files_run_but_are_not_scanned(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "lib/__init__.py": "from .util import VALUE\n" + QUERY_A,
            "lib/util.py": "VALUE = 42\n",
            "tasks.py": "from .lib import VALUE\n" + QUERY_A,
        },
    )
    app = load_app(tmp_path)
    assert app.modules["tasks"].VALUE == 42
    assert app.registry.paths() == ["tasks:a"]


def test_http_actions_in_modules_are_filed_but_not_resolvable(tmp_path: Path) -> None:
    source = (
        "from functions import http_action\n\n"
        "@http_action\nasync def hook(ctx, request):\n    return None\n"
    )
    app = load_app(write(tmp_path, {"hooks.py": source}))
    assert "hooks:hook" in app.registry
    with pytest.raises(FunctionNotFound):
        app.registry.resolve("hooks:hook")


class TestModuleBesideDirectory:
    """``permissions.py`` beside ``permissions/``, as Convex apps have them."""

    def app(self, tmp_path: Path) -> App:
        return load_app(
            write(
                tmp_path,
                {
                    "permissions.py": """\
                        from functions import query
                        from ._lib import LIB
                        from .permissions.grants import GRANTS

                        LEVEL = "file"

                        @query
                        async def check(ctx):
                            return [LEVEL, LIB, GRANTS]

                        @query
                        async def roles(ctx):
                            return "the file's roles"
                    """,
                    "permissions/roles.py": """\
                        from functions import query
                        from ..permissions import LEVEL
                        from .grants import GRANTS

                        ROLES = "roles"

                        @query
                        async def list(ctx):
                            return [LEVEL, GRANTS]
                    """,
                    "permissions/grants.py": 'GRANTS = "grants"\n',
                    "_lib.py": 'LIB = "lib"\n',
                    "tasks.py": """\
                        from functions import query
                        from .permissions import LEVEL, check
                        from .permissions.roles import ROLES
                        from .permissions import grants

                        @query
                        async def uses(ctx):
                            return [LEVEL, ROLES, grants.GRANTS]
                    """,
                },
            )
        )

    def test_both_load_under_their_convex_paths(self, tmp_path: Path) -> None:
        app = self.app(tmp_path)
        assert app.registry.paths() == [
            "permissions/roles:list",
            "permissions:check",
            "permissions:roles",
            "tasks:uses",
        ]
        assert app.modules["permissions"].__name__ == f"{app.package}.permissions"
        assert app.modules["permissions/roles"].__name__ == f"{app.package}.permissions.roles"

    def test_relative_imports_in_both_directions(self, tmp_path: Path) -> None:
        app = self.app(tmp_path)
        tasks, file = app.modules["tasks"], app.modules["permissions"]
        roles = app.modules["permissions/roles"]
        assert tasks.LEVEL == "file" and tasks.ROLES == "roles" and tasks.grants.GRANTS == "grants"
        assert tasks.check is file.check
        assert roles.LEVEL == "file" and roles.GRANTS == "grants"
        assert file.LIB == "lib" and file.GRANTS == "grants" and file.__package__ == app.package

    def test_a_submodule_does_not_replace_a_function_of_its_name(self, tmp_path: Path) -> None:
        app = self.app(tmp_path)
        spec = app.registry.resolve("permissions:roles")
        assert app.modules["permissions"].roles is spec
        assert sys.modules[f"{app.package}.permissions.roles"] is app.modules["permissions/roles"]
