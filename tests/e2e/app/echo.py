"""Value round trips: untyped passthrough and typed int64/bytes/float64 validators."""

import math

from functions import mutation, query
from schema import v
from schema.values import Int64


# Functions declared without args= receive the caller's argument object unvalidated.
@query()
async def args(ctx, **kwargs):
    return kwargs


@mutation()
async def mutate(ctx, **kwargs):
    return kwargs


@query(args={"n": v.int64(), "b": v.bytes(), "f": v.float64()})
async def typed(ctx, n, b, f):
    return {
        "n": n,
        "b": b,
        "f": f,
        "nPlusOne": Int64(n + 1),
        "nIsInt64": isinstance(n, Int64),
        "bIsBytes": isinstance(b, bytes),
        "bLength": len(b),
        "bReversed": bytes(reversed(b)),
        "fIsNan": isinstance(f, float) and math.isnan(f),
    }


@mutation(args={"n": v.int64(), "b": v.bytes()})
async def typed_mutation(ctx, n, b):
    return {"n": Int64(n * 2), "b": b + b"!"}
