"""Live updates for subscriptions: one follower of the store fans events out to subscribers.

The feed listens for the store's NOTIFY, reads what is new once, and hands each event to
every subscriber's queue; subscribers never query the store themselves. A subscriber that
falls too far behind is dropped (its subscription ends) rather than slowing the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from adapters.event_store import PostgresEventStore
from adapters.notifications import EventNotifications
from adapters.outages import unavailable_service
from api.outages import outage_log
from domain.event_store import EventPage, RecordedEvent

log = logging.getLogger(__name__)

QUEUE_SIZE = 1_000
IDLE_WAKE_SECONDS = 1.0
BATCH = 500


class EventFeed:
    """Follows the global order from "now" and broadcasts every new event."""

    def __init__(self, store: PostgresEventStore, database_url: str) -> None:
        self._store = store
        self._database_url = database_url
        self._subscribers: set[asyncio.Queue[RecordedEvent | None]] = set()
        self._subscribed = 0
        """How many subscriptions were ever entered: a page read without bodies while
        nobody listened is read again in full if someone subscribed meanwhile."""
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin following from the current head."""
        position = await self._store.head_position()
        self._task = asyncio.create_task(self._follow(position), name="event-feed")

    async def stop(self) -> None:
        """Stop following and end every subscription."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for queue in list(self._subscribers):
            self._close(queue)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[RecordedEvent]]:
        """Every event appended from the moment of subscribing, until leaving or falling behind.

        The subscription starts when entered, so a caller can read current state inside the
        block and miss no change made after it subscribed.
        """
        queue: asyncio.Queue[RecordedEvent | None] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        self._subscribed += 1

        async def events() -> AsyncIterator[RecordedEvent]:
            while (event := await queue.get()) is not None:
                yield event

        try:
            yield events()
        finally:
            self._subscribers.discard(queue)

    async def _follow(self, position: int) -> None:
        while True:
            try:
                async with EventNotifications(self._database_url) as notifications:
                    while True:
                        page = await self._page(position)
                        for event in page.events:
                            self._broadcast(event)
                        # A page of positions only said nothing of what is left unless full.
                        caught_up = page.next_position - position < BATCH
                        position = page.next_position
                        if not page.events and caught_up:
                            await notifications.wait(IDLE_WAKE_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                service = unavailable_service(error)
                if service is None:
                    log.exception("event feed interrupted; following again shortly")
                else:
                    outage_log.report(service, error, "following the store for subscriptions")
                await asyncio.sleep(1.0)

    async def _page(self, position: int) -> EventPage:
        """The next page; while nobody is subscribed, its positions only (no event's body is
        read or decoded), unless someone subscribed during the read."""
        subscribed = self._subscribed
        if not self._subscribers:
            page = await self._store.read_all(position, BATCH, types=(), wait_seconds=0.5)
            if subscribed == self._subscribed:
                return page
        return await self._store.read_all(position, BATCH, wait_seconds=0.5)

    def _broadcast(self, event: RecordedEvent) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("dropping a subscriber that fell %d events behind", QUEUE_SIZE)
                self._close(queue)

    def _close(self, queue: asyncio.Queue[RecordedEvent | None]) -> None:
        self._subscribers.discard(queue)
        with contextlib.suppress(asyncio.QueueEmpty):
            while queue.full():
                queue.get_nowait()
        queue.put_nowait(None)
