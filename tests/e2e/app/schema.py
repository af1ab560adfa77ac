"""Schema of the end-to-end test app driven by the official Convex clients."""

from schema import define_schema, define_table, v

schema = define_schema(
    {
        "messages": define_table({"channel": v.string(), "body": v.string()}).index(
            "by_channel", ["channel"]
        ),
        "counters": define_table({"name": v.string(), "value": v.float64()}).index(
            "by_name", ["name"]
        ),
    }
)
