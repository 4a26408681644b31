"""Named positions in the global order, moved in the same transaction as their effects."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.database import driver_of
from adapters.schema import checkpoints


async def load(conn: AsyncConnection, name: str) -> int:
    """The checkpoint's position, creating it at 0 the first time."""
    await conn.execute(insert(checkpoints).values(name=name, position=0).on_conflict_do_nothing())
    query = select(checkpoints.c.position).where(checkpoints.c.name == name)
    return int((await conn.execute(query)).scalar_one())


_ADVANCE = (
    "UPDATE checkpoints SET position = %(position)s, updated_at = now()"
    " WHERE name = %(name)s AND position = %(expected)s"
)


async def advance(conn: AsyncConnection, name: str, expected: int, position: int) -> None:
    """Move a checkpoint from `expected` to `position`, failing if another follower moved it.

    A prepared statement on the driver, in `conn`'s transaction: the relay moves its
    checkpoint once a page."""
    params = {"name": name, "expected": expected, "position": position}
    cursor = await (await driver_of(conn)).execute(_ADVANCE, params, prepare=True)
    if cursor.rowcount != 1:
        raise CheckpointMoved(name, expected)


class CheckpointMoved(RuntimeError):
    """Two followers of the same name ran at once; the loser's transaction rolls back."""

    def __init__(self, name: str, expected: int) -> None:
        super().__init__(f"checkpoint {name} is no longer at {expected}")
