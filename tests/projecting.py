"""Running a projector over a test's own events in the session's shared database.

The session's database holds every test's events, and another test's commit may still be in
flight below this test's events: a batch that moves nothing means only that the page is held
back for now, not that the test's events are projected. So a test runs its projector until
the checkpoint has passed its own last event (or the projection stopped on an event), within
a bound.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters import checkpoints
from adapters.event_store import PostgresEventStore
from adapters.schema import projection_failures
from domain.event_store import NO_STREAM, NewEvent, RecordedEvent, StreamAppend
from domain.events import DomainEvent, to_data, type_name
from projections.projector import Projector
from tests.waiting import eventually

PROJECTED_WITHIN = 30.0


async def stored(
    store: PostgresEventStore, stream: str, events: list[DomainEvent]
) -> list[RecordedEvent]:
    """Append a test's domain events to a new stream, and read them back as recorded."""
    new = [NewEvent(uuid.uuid4(), type_name(e), to_data(e)) for e in events]
    await store.append(StreamAppend(stream, new, NO_STREAM))
    return await store.read_stream(stream)


async def project_through(
    engine: AsyncEngine, projector: Projector, position: int, within: float = PROJECTED_WITHIN
) -> None:
    """Run `projector` until its checkpoint is at `position` or past it, or it stopped."""

    async def passed() -> bool:
        await projector.run_batch(wait_seconds=0.1)
        async with engine.begin() as conn:
            at = await checkpoints.load(conn, projector.checkpoint)
            failure = await conn.execute(
                select(projection_failures.c.position).where(
                    projection_failures.c.name == projector.checkpoint
                )
            )
            stopped = failure.first() is not None
        return at >= position or stopped

    await eventually(passed, within, f"{projector.checkpoint} passed position {position}")


class RecordingProjection:
    """A projection of one test's own event type that remembers the positions of every
    batch it was given."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.event_types = (f"Seen_{name}",)
        self.tables: tuple[str, ...] = ()
        self.batches: list[list[int]] = []

    async def apply(self, conn: AsyncConnection, event: RecordedEvent) -> None:
        await self.apply_batch(conn, [event])

    async def apply_batch(self, conn: AsyncConnection, events: Sequence[RecordedEvent]) -> None:
        self.batches.append([event.position for event in events])

    def writing_to(self, tables: dict[str, str]) -> RecordingProjection:
        raise NotImplementedError("not rebuilt in these tests")
