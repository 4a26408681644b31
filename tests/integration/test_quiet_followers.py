"""Followers that do less work per append: a drained listener is woken only by what came after,
a projector starts a batch where it left its checkpoint, and the subscriptions' feed reads no
event bodies while nobody is subscribed, yet misses nothing for one who subscribes."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Sequence

import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import checkpoints
from adapters.database import libpq_url
from adapters.event_store import NOTIFY_CHANNEL, PostgresEventStore
from adapters.notifications import KEEPALIVE, EventNotifications
from api.live import EventFeed
from domain.event_store import NO_STREAM, EventPage, NewEvent, StreamAppend
from projections.projector import Projector
from tests.projecting import RecordingProjection

WITHIN = 10.0


async def notify(database_url: str, times: int) -> None:
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True
    ) as conn:
        for _ in range(times):
            await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")


async def test_a_drained_listener_waits_for_the_next_notification(database_url: str) -> None:
    async with EventNotifications(database_url) as notifications:
        await notify(database_url, 3)
        assert await notifications.wait(WITHIN)  # they arrived
        await notify(database_url, 3)
        await asyncio.sleep(0.2)
        await notifications.drain()
        assert not await notifications.wait(0.3)
        await notify(database_url, 1)
        assert await notifications.wait(WITHIN)


async def append(store: PostgresEventStore, kind: str, count: int) -> int:
    events = [NewEvent(uuid.uuid4(), kind, {"n": n}) for n in range(count)]
    return (await store.append(StreamAppend(f"counted-{uuid.uuid4()}", events, NO_STREAM))).position


async def test_a_projector_asks_where_to_start_only_after_handing_back(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    projection = RecordingProjection(f"counted_{uuid.uuid4().hex[:12]}")
    kind = projection.event_types[0]
    projector = Projector(engine, store, projection, batch_size=500)  # type: ignore[arg-type]
    starts = 0
    ask = projector._start

    async def counted_start() -> int | None:
        nonlocal starts
        starts += 1
        return await ask()

    projector._start = counted_start  # type: ignore[method-assign]
    first = await append(store, kind, 2)
    async with engine.begin() as conn:
        at = await checkpoints.load(conn, projector.checkpoint)
        await checkpoints.advance(conn, projector.checkpoint, at, first - 2)
    try:
        while await projector.run_batch():
            pass
        second = await append(store, kind, 3)
        while await projector.run_batch():
            pass
        assert starts == 1
        await projector.stop_reading_ahead()  # handing back: another instance may move it
        third = await append(store, kind, 1)
        while await projector.run_batch():
            pass
        assert starts == 2
    finally:
        await projector.stop_reading_ahead()
    assert [p for batch in projection.batches for p in batch] == [
        first - 1,
        first,
        second - 2,
        second - 1,
        second,
        third,
    ]
    async with engine.begin() as conn:
        assert await checkpoints.load(conn, projector.checkpoint) == third


class PagingStore:
    """A store whose reads are recorded; `during_read` runs while a read is under way."""

    def __init__(self) -> None:
        self.reads: list[tuple[int, Sequence[str] | None]] = []
        self.during_read: asyncio.Event | None = None
        self.read_started = asyncio.Event()

    async def read_all(
        self,
        after_position: int,
        limit: int,
        types: Sequence[str] | None = None,
        wait_seconds: float = 1.0,
    ) -> EventPage:
        self.reads.append((after_position, types))
        self.read_started.set()
        if self.during_read is not None:
            await self.during_read.wait()
        return EventPage([], after_position + 1)


async def test_the_feed_reads_positions_only_while_nobody_is_subscribed() -> None:
    store = PagingStore()
    feed = EventFeed(store, "unused")  # type: ignore[arg-type]
    await feed._page(10)
    assert store.reads == [(10, ())]
    async with feed.subscribe():
        await feed._page(11)
    assert store.reads[-1] == (11, None)


async def test_a_subscription_entered_during_a_positions_only_read_gets_the_page_in_full() -> None:
    store = PagingStore()
    store.during_read = asyncio.Event()
    feed = EventFeed(store, "unused")  # type: ignore[arg-type]
    reading = asyncio.ensure_future(feed._page(20))
    await asyncio.wait_for(store.read_started.wait(), WITHIN)
    async with feed.subscribe():
        store.during_read.set()
        await asyncio.wait_for(reading, WITHIN)
    assert store.reads == [(20, ()), (20, None)]


async def test_a_listening_connection_keeps_its_peer_alive_with_tcp_keepalives(
    database_url: str,
) -> None:
    async with EventNotifications(database_url) as notifications:
        conn = notifications._conn
        assert conn is not None
        # A socket object of its own on a copy of the descriptor: closing it leaves the
        # connection's open.
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
            assert idle == KEEPALIVE["keepalives_idle"]
        assert await notifications.wait(0) is False  # still usable
