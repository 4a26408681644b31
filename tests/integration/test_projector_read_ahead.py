"""The projector reads its next page while it applies the current one, but the checkpoint
still decides which batches are kept: one applied from where the projector last left it is
rolled back when the checkpoint moved meanwhile."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import checkpoints
from adapters.event_store import PostgresEventStore
from domain.event_store import NO_STREAM, NewEvent, StreamAppend
from projections.projector import Projector
from tests.projecting import RecordingProjection


async def test_a_checkpoint_moved_back_is_followed_and_the_page_read_ahead_is_not_used(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    projection = RecordingProjection(f"seen_{uuid.uuid4().hex[:12]}")
    kind = projection.event_types[0]
    events = [NewEvent(uuid.uuid4(), kind, {"n": n}) for n in range(30)]
    last = (await store.append(StreamAppend(f"seen-{uuid.uuid4()}", events, NO_STREAM))).position
    start = last - 30
    projector = Projector(engine, store, projection, batch_size=10)  # type: ignore[arg-type]
    async with engine.begin() as conn:
        # Start just before this test's events: the session's database holds others' too.
        at = await checkpoints.load(conn, projector.checkpoint)
        await checkpoints.advance(conn, projector.checkpoint, at, start)

    try:
        assert await projector.run_batch() == 10  # and the next page is being read meanwhile
        async with engine.begin() as conn:  # an operator moves the checkpoint back
            await checkpoints.advance(conn, projector.checkpoint, start + 10, start)
        assert await projector.run_batch() == 10
        assert await projector.run_batch() == 10
        assert await projector.run_batch() == 10
    finally:
        await projector.stop_reading_ahead()

    def page(first: int) -> list[int]:
        return list(range(start + first, start + first + 10))

    # The batch after the move starts where the projector left the checkpoint (page 11); its
    # move fails, so it is rolled back, and the projector starts again from the checkpoint.
    assert projection.batches == [page(1), page(11), page(1), page(11), page(21)]
    async with engine.begin() as conn:
        assert await checkpoints.load(conn, projector.checkpoint) == start + 30
