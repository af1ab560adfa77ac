from schema import define_schema, define_table, v

schema = define_schema(
    {
        "tasks": define_table(
            {
                "owner": v.string(),  # the authenticated user's identity.subject
                "title": v.string(),
                "done": v.boolean(),
                "attachment": v.optional(v.id("_storage")),
            }
        ).index("by_owner", ["owner"]),
        "notifications": define_table(
            {"owner": v.string(), "message": v.string(), "read": v.boolean(), "at": v.float64()}
        )
        .index("by_owner", ["owner", "read"])
        .index("by_read_at", ["read", "at"]),
    }
)
