"""The gap problem: a follower of the global order never skips a slow transaction's event."""

from __future__ import annotations

import asyncio
import random
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.event_store import PostgresEventStore
from domain.event_store import NO_STREAM, NewEvent, RecordedEvent, StreamAppend


def one_event_append(stream: str | None = None) -> StreamAppend:
    return StreamAppend(
        stream or f"order-{uuid.uuid4()}", [NewEvent(uuid.uuid4(), "Ordered", {})], NO_STREAM
    )


class Follower:
    """Reads the global order from a starting position, as the relay and projectors do."""

    def __init__(self, store: PostgresEventStore, after: int) -> None:
        self.store = store
        self.position = after
        self.seen: list[RecordedEvent] = []

    async def step(self) -> None:
        page = await self.store.read_all(self.position, 300, wait_seconds=0.05)
        self.seen.extend(page.events)
        self.position = page.next_position


async def test_follower_waits_for_a_slow_committer(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    follower = Follower(store, await store.head_position())
    async with engine.connect() as slow:
        transaction = await slow.begin()
        slow_append = one_event_append()
        slow_result = await store.append_in(slow, slow_append)
        slow_position = slow_result.position
        written = {slow_append.events[0].event_id}

        async def fast_writer() -> None:
            for _ in range(125):
                append = one_event_append()
                await store.append(append)
                written.add(append.events[0].event_id)

        writers = asyncio.gather(*(fast_writer() for _ in range(8)))
        while not writers.done():
            await follower.step()
            assert follower.position < slow_position
        await writers
        for _ in range(3):
            await follower.step()
        assert follower.position == slow_position - 1
        assert all(e.position < slow_position for e in follower.seen)

        await transaction.commit()

    head = await store.head_position()
    while follower.position < head:
        await follower.step()
    positions = [e.position for e in follower.seen]
    assert slow_position in positions
    assert positions == sorted(set(positions))
    # Only this test's events are counted: the session's database is shared.
    assert len([e for e in follower.seen if e.event_id in written]) == len(written) == 1001


async def test_randomised_writers_with_rollbacks_are_followed_exactly_once(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    rng = random.Random(20261128)
    start = await store.head_position()
    follower = Follower(store, start)
    committed: set[uuid.UUID] = set()

    async def writer(seed: int) -> None:
        local = random.Random(seed)
        for _ in range(1250):
            append = one_event_append()
            async with engine.connect() as conn:
                transaction = await conn.begin()
                await store.append_in(conn, append)
                if local.random() < 0.05:
                    await asyncio.sleep(local.random() * 0.01)
                if local.random() < 0.02:
                    await transaction.rollback()
                    continue
                await transaction.commit()
            committed.add(append.events[0].event_id)

    writers = asyncio.gather(*(writer(rng.randrange(1 << 30)) for _ in range(8)))
    while not writers.done():
        await follower.step()
    await writers
    head = await store.head_position()
    while follower.position < head:
        await follower.step()

    positions = [e.position for e in follower.seen]
    assert positions == sorted(positions)
    assert len(positions) == len(set(positions))
    seen_ids = {e.event_id for e in follower.seen if e.type == "Ordered"}
    assert seen_ids == committed
