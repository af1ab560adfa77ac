"""Dependencies point down only: schema -> functions -> reactor; client_sdk stays light; inside
``reactor/`` each folder imports only the layers before it; no import cycles anywhere.

The static checks read every module's imports with ``ast`` (module-level and function-level
imports alike; only ``if TYPE_CHECKING:`` blocks are left out, as they never run), so a lazy
import cannot hide an upward dependency. ``check_tree`` is also run on small trees written
in ``tmp_path`` with a deliberate cycle and a deliberate upward import, to show it fails.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schema", "functions", "reactor", "client_sdk")

# What each package may import from the others (besides itself and third-party code).
PACKAGE_RULES: Mapping[str, tuple[str, ...]] = {
    "schema": (),
    "functions": ("schema",),
    "reactor": ("schema", "functions"),
    "client_sdk": ("schema", "reactor.sync.messages"),
}

# Inside reactor/: the part a module belongs to -> the parts it may import (itself included).
# core <- storage <- engine <- platform <- runners <- server <- testing; sync and auth import
# only core;
# errors.py is the leaf every part may import; so is the package itself (``__version__``).
REACTOR_RULES: Mapping[str, frozenset[str]] = {
    "errors": frozenset({"errors"}),
    "core": frozenset({"errors", "core"}),
    "sync": frozenset({"errors", "core", "sync"}),
    "auth": frozenset({"errors", "core", "auth"}),
    "storage": frozenset({"errors", "core", "storage"}),
    "engine": frozenset({"errors", "core", "engine"}),
    "platform": frozenset({"errors", "core", "engine", "platform"}),
    "runners": frozenset({"errors", "core", "storage", "engine", "platform", "runners"}),
    # operations/ (snapshots, system functions of the CLI): may import everything below server.
    "operations": frozenset(
        {"errors", "core", "sync", "auth", "storage", "engine", "platform", "runners", "operations"}
    ),
    # codegen renders a loaded app (functions, schema) as typed frontends: pure, no runtime.
    "codegen": frozenset({"errors", "codegen"}),
    "server": frozenset(
        {
            "errors",
            "core",
            "sync",
            "auth",
            "storage",
            "engine",
            "platform",
            "runners",
            "operations",
            "codegen",
            "server",
        }
    ),
    "testing": frozenset(
        {
            "errors",
            "core",
            "sync",
            "auth",
            "storage",
            "engine",
            "platform",
            "runners",
            "operations",
            "codegen",
            "server",
            "testing",
        }
    ),
    "__init__": frozenset({"__init__"}),
    "__main__": frozenset({"server"}),
}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, package: str, known: set[str]) -> Iterator[str]:
    """The project modules ``tree`` imports (``from a import b`` counts as ``a.b`` when that is
    a module, else ``a``)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield candidate if candidate in known else base
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the project modules it imports, for every ``.py`` file of ``packages``."""
    files = {
        module_name(root, path): path
        for package in packages
        for path in (root / package).rglob("*.py")
    }
    known = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = {
            target
            for target in _imports(tree, package, known)
            if target.split(".")[0] in packages and target != name
        }
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in graph:
                continue
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found is not None:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found is not None:
                return found
    return None


def _reactor_part(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def layer_violations(graph: Mapping[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        top = module.split(".")[0]
        for target in sorted(targets):
            target_top = target.split(".")[0]
            if target_top == top and top != "reactor":
                continue
            if target_top != top:
                allowed = PACKAGE_RULES[top]
                if not any(target == a or target.startswith(a + ".") for a in allowed):
                    problems.append(f"{module} -> {target} (package {top} may not import it)")
                continue
            part, target_part = _reactor_part(module), _reactor_part(target)
            if target_part != "__init__" and target_part not in REACTOR_RULES[part]:
                problems.append(f"{module} -> {target} (reactor/{part} is below {target_part})")
    return problems


def check_tree(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    graph = import_graph(root, packages)
    problems = layer_violations(graph)
    cycle = find_cycle(graph)
    if cycle is not None:
        problems.append("import cycle: " + " -> ".join(cycle))
    return problems


def test_the_project_has_no_upward_imports_and_no_cycles() -> None:
    assert check_tree(ROOT) == []


def test_every_reactor_module_belongs_to_a_known_layer() -> None:
    parts = {_reactor_part(m) for m in import_graph(ROOT) if m.startswith("reactor")}
    assert parts <= set(REACTOR_RULES), parts - set(REACTOR_RULES)


def _write(root: Path, files: Mapping[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    for package in PACKAGES:
        (root / package).mkdir(exist_ok=True)
        (root / package / "__init__.py").touch()
    return root


def test_a_deliberate_cycle_is_found(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "reactor/engine/__init__.py": "",
            "reactor/engine/a.py": "from reactor.engine import b\n",
            "reactor/engine/b.py": "def f():\n    from reactor.engine.a import g\n",
        },
    )
    assert check_tree(root) == [
        "import cycle: reactor.engine.a -> reactor.engine.b -> reactor.engine.a"
    ]


def test_a_deliberate_upward_import_is_found(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "reactor/core/__init__.py": "",
            "reactor/core/clock.py": "from reactor.server.deployment import Deployment\n",
            "reactor/server/__init__.py": "",
            "reactor/server/deployment.py": "Deployment = object\n",
            "reactor/sync/__init__.py": "",
            "reactor/sync/p.py": "from reactor.engine import x\n",
            "schema/values.py": "import functions\n",
        },
    )
    assert check_tree(root) == [
        "reactor.core.clock -> reactor.server.deployment (reactor/core is below server)",
        "reactor.sync.p -> reactor.engine (reactor/sync is below engine)",
        "schema.values -> functions (package schema may not import it)",
    ]


def test_type_checking_imports_do_not_count(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "reactor/core/__init__.py": "",
            "reactor/core/x.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from reactor.server import y\n"
            ),
        },
    )
    assert check_tree(root) == []


# -- what importing a package loads, in a fresh interpreter ------------------------------------


def loaded_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    return set(json.loads(out))


def _tops(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.mark.parametrize(
    ("statement", "forbidden"),
    [
        (
            "import schema, schema.ordering, schema.ids",
            {"functions", "reactor", "client_sdk", "starlette", "sqlite3"},
        ),
        ("import functions, functions.loader", {"reactor", "client_sdk", "starlette", "sqlite3"}),
        ("import client_sdk", {"functions", "starlette", "uvicorn", "sqlite3", "pymongo"}),
        ("import reactor", {"starlette", "uvicorn", "sqlite3"}),
        (
            "import reactor.errors",
            {"starlette", "uvicorn", "sqlite3", "httpx", "jwt", "pymongo", "itsdangerous"},
        ),
    ],
)
def test_imports_point_down_only(statement: str, forbidden: set[str]) -> None:
    assert _tops(loaded_after(statement)) & forbidden == set()


def test_client_sdk_loads_only_the_wire_messages_of_reactor() -> None:
    reactor_modules = {m for m in loaded_after("import client_sdk") if m.startswith("reactor")}
    assert reactor_modules <= {"reactor", "reactor.sync", "reactor.sync.messages"}
