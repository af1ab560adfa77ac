from schema import define_schema, define_table, v

schema = define_schema(
    {
        "accounts": define_table({"owner": v.string(), "balance": v.float64()}),
        "notes": define_table(
            {
                "account": v.id("accounts"),
                "text": v.string(),
                "count": v.optional(v.int64()),
                "file": v.optional(v.id("_storage")),
            }
        ).index("by_account", ["account"]),
    }
)
