"""Read-your-writes: waiting until projections have processed a global position."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.schema import checkpoints
from projections.projector import checkpoint_name

POLL_SECONDS = 0.01


async def caught_up(engine: AsyncEngine, projections: Sequence[str], position: int) -> bool:
    """Whether every named projection has processed `position`."""
    names = [checkpoint_name(p) for p in projections]
    query = select(func.count()).where(
        checkpoints.c.name.in_(names), checkpoints.c.position >= position
    )
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one()) == len(names)


async def wait_until_caught_up(
    engine: AsyncEngine, projections: Sequence[str], position: int, seconds: float
) -> bool:
    """Wait (bounded) until the projections have processed `position`; False on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await caught_up(engine, projections, position):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(POLL_SECONDS)
    return True
