"""The relay's checkpoint: how far the relay has published, against the head of the store."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import checkpoints
from adapters.event_store import head_position

RELAY_CHECKPOINT = "relay"
"""The checkpoint name of the relay, which publishes every event to Kafka in order."""


@dataclass(frozen=True)
class RelayStatus:
    """The head of the store and the relay's position in it."""

    head: int
    position: int

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)


async def relay_status(engine: AsyncEngine) -> RelayStatus:
    """The head position and the relay's checkpoint."""
    async with engine.begin() as conn:
        head = await head_position(conn)
        position = await checkpoints.load(conn, RELAY_CHECKPOINT)
    return RelayStatus(head, position)
