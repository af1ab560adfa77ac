"""Schema of the app the dashboard's browser tests run against."""

from schema import define_schema, define_table, v

schema = define_schema(
    {
        "tasks": define_table(
            {"title": v.string(), "done": v.boolean(), "priority": v.float64()}
        ).index("by_priority", ["priority"]),
        "notes": define_table({"task": v.id("tasks"), "text": v.string()}),
    }
)
