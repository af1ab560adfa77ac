from schema import define_schema, define_table, v

task_fields = {
    "owner": v.string(),  # the authenticated user's identity.subject
    "title": v.string(),
    "done": v.boolean(),
    "attachment": v.optional(v.id("_storage")),
}
notification_fields = {
    "owner": v.string(),
    "message": v.string(),
    "read": v.boolean(),
    "at": v.float64(),
}


def document(table, fields):
    """A stored document of `table`: its fields plus the system fields (for returns=)."""
    return v.object({"_id": v.id(table), "_creationTime": v.float64(), **fields})


schema = define_schema(
    {
        "tasks": define_table(task_fields).index("by_owner", ["owner"]),
        "notifications": define_table(notification_fields)
        .index("by_owner", ["owner", "read"])
        .index("by_read_at", ["read", "at"]),
    }
)
