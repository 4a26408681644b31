"""Named positions in the global order, moved in the same transaction as their effects."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.schema import checkpoints


async def load(conn: AsyncConnection, name: str) -> int:
    """The checkpoint's position, creating it at 0 the first time."""
    await conn.execute(insert(checkpoints).values(name=name, position=0).on_conflict_do_nothing())
    query = select(checkpoints.c.position).where(checkpoints.c.name == name)
    return int((await conn.execute(query)).scalar_one())


async def advance(conn: AsyncConnection, name: str, expected: int, position: int) -> None:
    """Move a checkpoint from `expected` to `position`, failing if another follower moved it."""
    result = await conn.execute(
        update(checkpoints)
        .where(checkpoints.c.name == name, checkpoints.c.position == expected)
        .values(position=position, updated_at=func.now())
    )
    if result.rowcount != 1:
        raise CheckpointMoved(name, expected)


class CheckpointMoved(RuntimeError):
    """Two followers of the same name ran at once; the loser's transaction rolls back."""

    def __init__(self, name: str, expected: int) -> None:
        super().__init__(f"checkpoint {name} is no longer at {expected}")
