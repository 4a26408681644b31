"""The relay's checkpoint: how far the relay has published, against the head of the store."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import checkpoints
from adapters.event_store import head_position
from adapters.schema import relay_brokers

RELAY_CHECKPOINT = "relay"
"""The checkpoint name of the relay, which publishes every event to Kafka in order."""


@dataclass(frozen=True)
class RelayStatus:
    """The head of the store, the relay's position in it, and how often it published again."""

    head: int
    position: int
    recoveries: int = 0
    """Times the broker had lost acknowledged events and the relay went back to refill it."""

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)


async def relay_status(engine: AsyncEngine, name: str = RELAY_CHECKPOINT) -> RelayStatus:
    """The head position, the relay's checkpoint and its count of recoveries."""
    async with engine.begin() as conn:
        head = await head_position(conn)
        position = await checkpoints.load(conn, name)
        recoveries = (
            await conn.execute(
                select(relay_brokers.c.recoveries).where(relay_brokers.c.name == name)
            )
        ).scalar_one_or_none()
    return RelayStatus(head, position, int(recoveries or 0))
