"""Schema of the app the HTTP-hardening tests serve."""

from schema import define_schema, define_table, v

schema = define_schema({"notes": define_table({"text": v.string()}).index("by_text", ["text"])})
