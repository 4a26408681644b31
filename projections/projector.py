"""Runs projections: each follows the global order and moves its checkpoint with its rows."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters import checkpoints
from domain.event_store import EventStore, RecordedEvent


class Projection(Protocol):
    """A read model: its name, the events it reads, and how one event changes its rows."""

    name: str
    event_types: tuple[str, ...]

    async def apply(self, conn: AsyncConnection, event: RecordedEvent) -> None:
        """Change the read model for one event."""
        ...


def checkpoint_name(projection_name: str) -> str:
    """The checkpoint a projection keeps its position in."""
    return f"projection:{projection_name}"


class Projector:
    """Brings one projection up to date, batch by batch, exactly once per event."""

    def __init__(
        self, engine: AsyncEngine, store: EventStore, projection: Projection, batch_size: int = 500
    ) -> None:
        self._engine = engine
        self._store = store
        self._projection = projection
        self._batch_size = batch_size
        self._checkpoint = checkpoint_name(projection.name)

    async def run_batch(self, wait_seconds: float = 0.5) -> int:
        """Apply the next batch of events; returns how far the checkpoint moved (0: up to date)."""
        async with self._engine.begin() as conn:
            position = await checkpoints.load(conn, self._checkpoint)
        page = await self._store.read_all(
            position, self._batch_size, self._projection.event_types, wait_seconds
        )
        if page.next_position == position:
            return 0
        async with self._engine.begin() as conn:
            for event in page.events:
                await self._projection.apply(conn, event)
            await checkpoints.advance(conn, self._checkpoint, position, page.next_position)
        return page.next_position - position
