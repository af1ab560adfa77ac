"""The test app's own schema.py: it must never shadow the real `schema` package."""

from __future__ import annotations

from schema import define_schema, define_table, v

MARKER = "the basic app's schema.py"

schema = define_schema(
    {
        "tasks": define_table({"text": v.string(), "owner": v.string()}).index(
            "by_owner", ["owner"]
        ),
    }
)
