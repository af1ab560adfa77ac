from schema import define_schema, define_table, v

schema = define_schema(
    {
        "tasks": define_table(
            {"title": v.string(), "owner": v.string(), "done": v.boolean()}
        ).index("by_owner", ["owner"]),
        "counters": define_table({"name": v.string(), "value": v.float64()}).index(
            "by_name", ["name"]
        ),
    }
)
