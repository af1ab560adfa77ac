"""An app as data: what a server needs of an app whose code it does not run.

A function runner loads the app's code and describes it (``describe_app``): every function's
path, kind, visibility and validators, the schema, the cron jobs, the HTTP routes and the auth
providers as ``auth_config.py`` writes them. The server rebuilds an ``App`` from that
(``app_from_manifest``) whose functions have no code: with it the server validates arguments,
routes calls and HTTP requests, schedules crons and checks the schema, and runs nothing of the
app. The manifest is plain JSON data (Convex's validator descriptors inside), so reading it
never imports or runs app code.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from functions.crons import (
    CronJob,
    Crons,
    CronSchedule,
    IntervalSchedule,
    ScheduleKind,
    find_crons,
)
from functions.decorators import FunctionKind, FunctionSpec, Visibility
from functions.errors import ModuleLoadError
from functions.http_router import HttpRouter, find_http_router
from functions.loader import App, Declared, package_name
from functions.registry import Registry
from schema.errors import SchemaError
from schema.tables import SchemaDefinition, TableDefinition
from schema.validators import Validator, field_from_json, validator_from_json
from schema.values import convex_to_json, json_to_convex

__all__ = ["ManifestError", "app_from_manifest", "describe_app"]

VERSION = 1


class ManifestError(SchemaError):
    """A manifest the server cannot read (a runner of another version, or corrupt data)."""


# -- the runner's side: describe a loaded app --------------------------------------------------


def describe_app(app: App) -> dict[str, Any]:
    """The manifest of ``app``, a loaded app (its special modules are imported here).

    Raises:
        ModuleLoadError: ``crons.py`` or ``http.py`` fails to import, or ``auth_config.py``'s
            providers are not plain data.
    """
    crons = find_crons(app.import_module("crons")) if "crons" in app.special_files else None
    router = find_http_router(app.import_module("http")) if "http" in app.special_files else None
    return {
        "version": VERSION,
        "functions": [_describe_function(path, spec) for path, spec in app.registry.items()],
        "schema": None if app.schema is None else _describe_schema(app.schema),
        "crons": None if crons is None else [_describe_cron(job) for job in crons],
        "http": None if router is None else [_describe_route(r) for r in router.routes()],
        "auth": _describe_auth(app),
    }


def _describe_function(path: str, spec: FunctionSpec) -> dict[str, Any]:
    args: Any = None
    if isinstance(spec.args, Validator):
        args = {"validator": spec.args.to_json()}
    elif spec.args is not None:
        args = {"fields": [[name, _describe_field(field)] for name, field in spec.args.items()]}
    return {
        "path": path,
        "name": spec.__name__,
        "kind": spec.kind.value,
        "visibility": spec.visibility.value,
        "args": args,
        "returns": None if spec.returns is None else _describe_field(spec.returns),
    }


def _describe_field(validator: Validator) -> dict[str, Any]:
    return {"fieldType": validator.to_json(), "optional": validator.is_optional}


def _describe_schema(schema: SchemaDefinition) -> dict[str, Any]:
    return {
        "tables": {
            name: {
                "document": table.document_validator.to_json(),
                "indexes": {index: list(fields) for index, fields in table.indexes.items()},
            }
            for name, table in schema.tables.items()
        },
        "schemaValidation": schema.schema_validation,
        "strictTableNameTypes": schema.strict_table_name_types,
    }


def _describe_cron(job: CronJob) -> dict[str, Any]:
    schedule = job.schedule
    if isinstance(schedule, IntervalSchedule):
        described: dict[str, Any] = {"seconds": schedule.seconds}
    else:
        described = {"cron": schedule.expression, "kind": schedule.kind.value}
    return {
        "name": job.name,
        "schedule": described,
        "function": job.function_path,
        "args": convex_to_json(job.args),
    }


def _describe_route(route: Any) -> dict[str, Any]:
    return {
        "method": route.method,
        "path": route.path,
        "pathPrefix": route.path_prefix,
        "handler": route.handler.path,
        "name": route.handler.__name__,
    }


def _describe_auth(app: App) -> Any:
    module = app.modules.get("auth_config")
    if module is None:
        return None
    raw = getattr(module, "providers", None)
    try:
        msgspec.json.encode(raw)
    except (TypeError, ValueError) as exc:
        raise ModuleLoadError(
            f"auth_config.py: `providers` must hold only plain data (dicts, lists, strings, "
            f"numbers): {exc}"
        ) from None
    return {"providers": raw}


# -- the server's side: an App without code ----------------------------------------------------


def app_from_manifest(directory: str | Path, manifest: Mapping[str, Any]) -> App:
    """The app ``manifest`` describes, whose functions have no code (``describe_app``).

    Raises:
        ManifestError: the manifest is not one this version reads.
    """
    if not isinstance(manifest, Mapping) or manifest.get("version") != VERSION:
        raise ManifestError("The function runner described the app in an unknown format")
    root = Path(directory).resolve()
    try:
        registry = Registry()
        for entry in manifest["functions"]:
            registry.add(entry["path"], _function(entry))
        schema = None if manifest["schema"] is None else _schema(manifest["schema"])
        crons = None if manifest["crons"] is None else _crons(manifest["crons"])
        router = None if manifest["http"] is None else _router(manifest["http"])
        auth = manifest["auth"]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ManifestError(
            f"The function runner's description of the app is corrupt: {exc!r}"
        ) from None
    return App(
        directory=root,
        package=package_name(root),
        schema=schema,
        registry=registry,
        declared=Declared(
            crons=crons,
            http_router=router,
            auth_config=auth,
        ),
    )


async def _elsewhere(*_: Any, **__: Any) -> Any:
    raise RuntimeError("This function's code runs in a function runner, not in the server")


def _function(entry: Mapping[str, Any]) -> FunctionSpec:
    args: Any = entry["args"]
    if args is not None:
        if "validator" in args:
            args = validator_from_json(args["validator"])
        else:
            args = {name: field_from_json(field) for name, field in args["fields"]}
    returns = entry["returns"]
    spec = FunctionSpec(
        _elsewhere,
        kind=FunctionKind(entry["kind"]),
        visibility=Visibility(entry["visibility"]),
        args=args,
        returns=None if returns is None else field_from_json(returns),
    )
    spec.__name__ = spec.__qualname__ = entry["name"]
    return spec


def _schema(described: Mapping[str, Any]) -> SchemaDefinition:
    tables = {
        name: TableDefinition(
            validator_from_json(table["document"]),
            {index: tuple(fields) for index, fields in table["indexes"].items()},
        )
        for name, table in described["tables"].items()
    }
    return SchemaDefinition(
        tables,
        schema_validation=described["schemaValidation"],
        strict_table_name_types=described["strictTableNameTypes"],
    )


def _crons(described: list[Mapping[str, Any]]) -> Crons:
    crons = Crons()
    for job in described:
        schedule = job["schedule"]
        if "seconds" in schedule:
            parsed: Any = IntervalSchedule(schedule["seconds"])
        else:
            parsed = CronSchedule(schedule["cron"], kind=ScheduleKind(schedule["kind"]))
        args = json_to_convex(job["args"])
        crons._add(job["name"], parsed, job["function"], args)
    return crons


def _router(described: list[Mapping[str, Any]]) -> HttpRouter:
    router = HttpRouter()
    for route in described:
        handler = FunctionSpec(
            _elsewhere, kind=FunctionKind.HTTP_ACTION, visibility=Visibility.PUBLIC
        )
        handler.__name__ = handler.__qualname__ = route["name"]
        if route["handler"] is not None:
            handler.path = route["handler"]
        router.route(
            path=route["path"],
            path_prefix=route["pathPrefix"],
            method=route["method"],
            handler=handler,
        )
    return router
