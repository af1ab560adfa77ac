"""The schema check before serving: stored documents must match the schema being deployed.

Owns the check Convex runs on a schema push: every document of a table whose validator changed
must match it, or the deployment refuses the schema (``SchemaDriftError`` naming the table, a
document id and the ``$.path`` at fault). It records which validators passed (the
``schema_checked`` global: table -> validator JSON), so a restart with an unchanged schema scans
nothing: documents written since were validated on write. ``define_schema(...,
schema_validation=False)`` turns the check off and forgets the record (writes are then not
validated, so the next check with validation on scans every table again). It does not decide when
to run (the deployment runs it at start and before swapping in reloaded code).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from reactor.core.index_keys import BY_CREATION_TIME, index_id
from reactor.core.persistence import Persistence
from schema.errors import SchemaDriftError, ValidationError
from schema.ordering import Order
from schema.tables import SchemaDefinition
from schema.values import loads

__all__ = ["SCHEMA_CHECKED", "SchemaDriftError", "check_stored_documents"]

log = logging.getLogger("reactor.engine.schema_check")

SCHEMA_CHECKED = "schema_checked"  # global: table -> the validator its documents matched
_SYSTEM_FIELDS = ("_id", "_creationTime")
_PAGE = 1000


def _fingerprints(schema: SchemaDefinition) -> dict[str, str]:
    return {
        table: json.dumps(definition.document_validator.to_json(), sort_keys=True)
        for table, definition in schema.tables.items()
    }


async def check_stored_documents(
    persistence: Persistence,
    schema: SchemaDefinition | None,
    ts: int,
    resolve_id_table: Callable[[str], str | None],
) -> list[str]:
    """Check the documents at ``ts`` of every table whose validator changed since the last
    successful check, then record the schema as checked. Returns the tables scanned.

    Raises:
        SchemaDriftError: a stored document does not match its table's validator.
    """
    if schema is None or not schema.schema_validation:
        if await persistence.get_global(SCHEMA_CHECKED):
            await persistence.set_global(SCHEMA_CHECKED, {})
        return []
    checked: dict[str, str] = await persistence.get_global(SCHEMA_CHECKED) or {}
    current = _fingerprints(schema)
    scanned = [table for table, print_ in current.items() if checked.get(table) != print_]
    for table in scanned:
        await _check_table(persistence, schema, table, ts, resolve_id_table)
    if current != checked:
        await persistence.set_global(SCHEMA_CHECKED, current)
    if scanned:
        log.info("schema check: documents of %s match the schema", ", ".join(scanned))
    return scanned


async def _check_table(
    persistence: Persistence,
    schema: SchemaDefinition,
    table: str,
    ts: int,
    resolve_id_table: Callable[[str], str | None],
) -> None:
    iid = index_id(table, BY_CREATION_TIME)
    start = b""
    while True:
        rows = await persistence.scan(iid, start, None, ts, Order.ASC, _PAGE)
        for row in rows:
            document = loads(row.value)
            fields = {k: v for k, v in document.items() if k not in _SYSTEM_FIELDS}
            try:
                schema.validate_document(table, fields, resolve_id_table=resolve_id_table)
            except ValidationError as exc:
                document_id = str(document.get("_id", row.document_id))
                prefix = f"Document for table `{table}` does not match the schema: "
                detail = exc.detail.removeprefix(prefix)
                raise SchemaDriftError(
                    f"Schema validation failed: document {document_id} in table `{table}` "
                    f"does not match the schema at `{exc.path}`: {detail}. Fix or migrate "
                    "the stored documents first, or turn the check off with "
                    "define_schema(..., schema_validation=False)",
                    table=table,
                    document_id=document_id,
                    path=exc.path,
                ) from None
        if len(rows) < _PAGE:
            return
        start = rows[-1].key + b"\x00"
