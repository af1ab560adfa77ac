"""Schema of the observability test app: notes, and one counter row mutations fight over."""

from schema import define_schema, define_table, v

schema = define_schema(
    {
        "notes": define_table({"text": v.string()}),
        "tallies": define_table({"name": v.string(), "value": v.float64()}).index(
            "by_name", ["name"]
        ),
    }
)
