"""Functions that misbehave on purpose (the isolation section): a query that never returns
and an action that burns CPU."""

import time

from functions import action, query
from schema import v


@query(args={})
async def spin(ctx):
    while True:
        pass


@action(args={"seconds": v.float64()})
async def burn(ctx, seconds):
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n
