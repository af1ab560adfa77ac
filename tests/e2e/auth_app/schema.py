"""Schema of the end-to-end auth/CLI test app."""

from schema import define_schema, define_table, v

schema = define_schema(
    {
        "notes": define_table({"body": v.string(), "author": v.string()}),
    }
)
