"""Schema of the benchmark app: tasks (push, fanout) and bank accounts (bank)."""

from schema import define_schema, define_table, v

schema = define_schema(
    {
        "tasks": define_table({"owner": v.string(), "title": v.string()}).index(
            "by_owner", ["owner"]
        ),
        "accounts": define_table({"n": v.float64(), "balance": v.float64()}).index("by_n", ["n"]),
    }
)
