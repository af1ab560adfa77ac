"""Loading an app directory: its schema, its function modules and their registry.

Owns discovery of app modules (``tasks.py`` -> ``tasks``, ``admin/users.py`` -> ``admin/users``),
importing them under a private package name (``_reactor_app_<hash>``) through a finder of our
own, never via ``sys.path``, so an app's ``schema.py`` cannot shadow the ``schema`` package, and
re-loading with fresh modules for ``reactor dev``. It does not run functions, schedule crons or
route HTTP (it only remembers ``crons.py``/``http.py`` and can import them on demand).

Rules: files and directories starting with ``_`` or ``.`` are not scanned for functions (they
stay importable by siblings, e.g. ``from ._lib import helper``); ``schema.py`` provides
``schema = define_schema(...)``; ``crons.py`` and ``http.py`` at the top level are special.
``x.py`` beside a directory ``x/`` is allowed, as in Convex (``x:fn`` and ``x/y:fn``): the file
is the module ``x`` and the directory's modules are its submodules (``from .x.y import fn``). A
function imported into another module (``from .tasks import add``) is filed only under the
module that defines it. Modules compile from source on every load (no ``.pyc`` files), so an
edit is always seen by the next load.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import threading
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from functions.decorators import FunctionSpec
from functions.errors import ModuleLoadError
from functions.registry import Registry
from schema.errors import SchemaError
from schema.tables import SchemaDefinition

if TYPE_CHECKING:  # both import this module's neighbours; only their types are needed here
    from functions.crons import Crons
    from functions.http_router import HttpRouter

__all__ = ["SPECIAL_MODULES", "App", "Declared", "load_app", "package_name"]

SPECIAL_MODULES = ("crons", "http")
_SCHEMA_MODULE = "schema"
_PACKAGE_PREFIX = "_reactor_app_"
_COMPONENT = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class Declared:
    """What an app declares besides its functions and schema, already read: set on an app the
    server rebuilt from a runner's manifest (``functions.manifest``), whose modules it never
    imports. ``auth_config`` is ``{"providers": ...}`` as ``auth_config.py`` writes it, or None
    when the app has no ``auth_config.py``."""

    crons: Crons | None
    http_router: HttpRouter | None
    auth_config: Any


@dataclass(eq=False)
class App:
    """A loaded app directory.

    Attributes:
        directory: the app directory (absolute).
        package: the private package its modules live under (``_reactor_app_<hash>``).
        schema: the ``schema`` variable of the app's ``schema.py``, or None.
        registry: every exported function, by canonical path.
        modules: module path (``"admin/users"``, ``"schema"``) -> imported module.
        special_files: ``"crons"``/``"http"`` -> file, for the runtime to import later.
        declared: set instead of modules and special files on an app rebuilt from a manifest.
    """

    directory: Path
    package: str
    schema: SchemaDefinition | None
    registry: Registry
    modules: dict[str, ModuleType] = field(default_factory=dict)
    special_files: dict[str, Path] = field(default_factory=dict)
    declared: Declared | None = None  # an app rebuilt from a manifest, not imported

    def import_module(self, module_path: str) -> ModuleType:
        """Import one module of this app by module path (``"crons"``, ``"lib/util"``).

        Raises:
            ModuleLoadError: the module does not exist or fails to import.
        """
        loaded = self.modules.get(module_path)
        if loaded is not None:
            return loaded
        file = self.directory.joinpath(*module_path.split("/")).with_suffix(".py")
        module = _import(self.package, module_path, file, self.directory)
        self.modules[module_path] = module
        return module


class _FileModule(ModuleType):
    """A module file ``x.py`` that has a directory ``x/`` beside it.

    Its ``__path__`` is that directory, so ``from .x.roles import y`` finds ``x/roles.py`` while
    ``from .x import z`` reads ``x.py``; its ``__package__`` stays the parent's, so relative
    imports inside ``x.py`` resolve as for any other module file. Importing a submodule does not
    replace an attribute of the same name that ``x.py`` defines (``x:roles`` and ``x/roles:fn``
    are different functions).
    """

    def __setattr__(self, name: str, value: object) -> None:
        existing = self.__dict__.get(name)
        if (
            isinstance(value, ModuleType)
            and value.__name__ == f"{self.__name__}.{name}"
            and existing is not None
            and not isinstance(existing, ModuleType)
        ):
            return
        super().__setattr__(name, value)


class _SourceLoader(importlib.abc.Loader):
    """Executes a module from its source file; ``path`` None is an empty package.

    ``directory`` is the same-named directory beside a module file, if any (see `_FileModule`).
    """

    def __init__(self, path: Path | None, directory: Path | None = None) -> None:
        self.path = path
        self.directory = directory

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None if self.directory is None else _FileModule(spec.name)

    def exec_module(self, module: ModuleType) -> None:
        if self.path is None:
            return
        if self.directory is not None:
            module.__path__ = [str(self.directory)]
        code = compile(self.path.read_bytes(), str(self.path), "exec", dont_inherit=True)
        exec(code, module.__dict__)


class _AppFinder(importlib.abc.MetaPathFinder):
    """Finds ``_reactor_app_<hash>[.sub...]`` modules inside their app directory, and nothing
    else, so relative imports between app modules work without touching ``sys.path``."""

    def __init__(self) -> None:
        self.roots: dict[str, Path] = {}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        root, _, rest = fullname.partition(".")
        directory = self.roots.get(root)
        if directory is None:
            return None
        parts = rest.split(".") if rest else []
        base = directory.joinpath(*parts)
        file = base.parent / f"{base.name}.py"
        if parts and file.is_file():
            beside = base if base.is_dir() else None
            return importlib.util.spec_from_file_location(
                fullname, file, loader=_SourceLoader(file, beside)
            )
        if base.is_dir():
            init = base / "__init__.py"
            if init.is_file():
                return importlib.util.spec_from_file_location(
                    fullname, init, loader=_SourceLoader(init), submodule_search_locations=[]
                )
            spec = importlib.machinery.ModuleSpec(fullname, _SourceLoader(None), is_package=True)
            spec.submodule_search_locations = [str(base)]
            return spec
        return None


_finder = _AppFinder()
_lock = threading.RLock()


def _install_finder() -> None:
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def package_name(directory: Path) -> str:
    """The private package name of an app directory (stable per absolute path)."""
    digest = hashlib.sha1(str(directory).encode(), usedforsecurity=False).hexdigest()[:12]
    return f"{_PACKAGE_PREFIX}{digest}"


def _purge(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def _relative(file: Path, directory: Path) -> str:
    try:
        return file.relative_to(directory).as_posix()
    except ValueError:
        return str(file)


def _discover(directory: Path) -> dict[str, Path]:
    """Module path -> file for every ``.py`` file not hidden by a ``_``/``.`` prefix."""
    found: dict[str, Path] = {}
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        for name in sorted(files):
            if not name.endswith(".py") or name.startswith(("_", ".")):
                continue
            file = Path(root, name)
            relative = file.relative_to(directory).with_suffix("")
            for component in relative.parts:
                if not _COMPONENT.fullmatch(component):
                    raise ModuleLoadError(
                        f"Cannot load {_relative(file, directory)}: module path component "
                        f"{component!r} may only contain letters, digits and underscores",
                        file=str(file),
                    )
            found[relative.as_posix()] = file
    for module_path, file in found.items():
        init = file.with_suffix("") / "__init__.py"
        if init.is_file():
            raise ModuleLoadError(
                f"{module_path}.py and {_relative(init, directory)} both define the module "
                f"{module_path!r}; keep one of them",
                file=str(file),
            )
    return found


def _failure_site(exc: BaseException, directory: Path) -> str:
    """``" (at lib/util.py:3)"``: the innermost line of app code the exception passed through."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" (at {_relative(Path(exc.filename), directory)}:{exc.lineno})"
    site = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.startswith(str(directory) + os.sep):
            site = f" (at {_relative(Path(frame.filename), directory)}:{frame.lineno})"
    return site


def _import(package: str, module_path: str, file: Path, directory: Path) -> ModuleType:
    name = f"{package}.{module_path.replace('/', '.')}"
    relative = _relative(file, directory)
    if not file.is_file():
        raise ModuleLoadError(f"App module {relative} does not exist", file=str(file))
    try:
        return importlib.import_module(name)
    except Exception as exc:
        message = (
            f"Failed to import {relative}{_failure_site(exc, directory)}: "
            f"{type(exc).__name__}: {exc}"
        )
        if module_path == _SCHEMA_MODULE:
            raise SchemaError(message) from exc
        raise ModuleLoadError(message, file=str(file)) from exc


def _check_schema_package(directory: Path) -> None:
    real = sys.modules.get("schema")
    if real is None or not hasattr(real, "__path__"):
        origin = getattr(real, "__file__", None)
        raise ModuleLoadError(
            f"The `schema` package is shadowed by {origin!r}: an app directory is on sys.path. "
            f"Run Reactor from outside {directory} or remove it from sys.path"
        )


def _exports(module: ModuleType, scanned: set[str]) -> list[tuple[str, FunctionSpec]]:
    """The module's functions, minus those it imported from another scanned module."""
    exports = []
    for attribute, value in vars(module).items():
        if not isinstance(value, FunctionSpec):
            continue
        home_name = value.__module__
        if home_name != module.__name__ and home_name in scanned:
            home = sys.modules.get(home_name)
            if home is not None and any(item is value for item in vars(home).values()):
                continue  # imported: it is filed under the module that defines it
        exports.append((attribute, value))
    return exports


def _load_schema(app: App, file: Path) -> None:
    module = _import(app.package, _SCHEMA_MODULE, file, app.directory)
    app.modules[_SCHEMA_MODULE] = module
    schema = getattr(module, "schema", None)
    if schema is None:
        raise SchemaError(
            f"{_relative(file, app.directory)} must define "
            "`schema = define_schema({...})` at module level"
        )
    if not isinstance(schema, SchemaDefinition):
        raise SchemaError(
            f"`schema` in {_relative(file, app.directory)} must be the result of "
            f"define_schema(...), got {type(schema).__name__}"
        )
    app.schema = schema


def load_app(directory: str | os.PathLike[str]) -> App:
    """Load (or re-load, with fresh modules) the app in ``directory``.

    Raises:
        ModuleLoadError: the directory is missing, a module fails to import or has a bad name.
        SchemaError: ``schema.py`` fails to import or does not define a valid ``schema``.
        FunctionDefinitionError: two functions share a path.
    """
    root = Path(directory).resolve()
    if not root.is_dir():
        raise ModuleLoadError(f"App directory {root} does not exist or is not a directory")
    _check_schema_package(root)
    package = package_name(root)
    with _lock:
        _install_finder()
        _purge(package)
        _finder.roots[package] = root
        app = App(directory=root, package=package, schema=None, registry=Registry())
        try:
            files = _discover(root)
            schema_file = files.pop(_SCHEMA_MODULE, None)
            for special in SPECIAL_MODULES:
                special_file = files.pop(special, None)
                if special_file is not None:
                    app.special_files[special] = special_file
            if schema_file is not None:
                _load_schema(app, schema_file)
            for module_path, file in files.items():
                app.modules[module_path] = _import(package, module_path, file, root)
            scanned = {module.__name__ for path, module in app.modules.items() if path in files}
            for module_path in files:
                module = app.modules[module_path]
                relative = _relative(files[module_path], root)
                for attribute, spec in _exports(module, scanned):
                    app.registry.add_export(
                        module_path, attribute, spec, origin=f"{relative}: {attribute}"
                    )
        except BaseException:
            _purge(package)
            raise
    return app
