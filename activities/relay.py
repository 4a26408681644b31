"""The relay: publishes every stored event to Kafka, moving its checkpoint after the ack."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.following import FollowInput, follow
from adapters import checkpoints
from adapters.kafka import KafkaEventPublisher
from domain.event_store import EventStore

RELAY_CHECKPOINT = "relay"


class RelayActivities:
    """Activities of the relay singleton."""

    def __init__(
        self,
        engine: AsyncEngine,
        store: EventStore,
        database_url: str,
        publisher: Callable[[], KafkaEventPublisher],
        batch_size: int = 500,
    ) -> None:
        self._engine = engine
        self._store = store
        self._database_url = database_url
        self._publisher = publisher
        self._batch_size = batch_size

    @activity.defn
    async def relay_events(self, params: FollowInput) -> int:
        """Publish events in global order until the run time passes; returns how many."""
        publisher = self._publisher()
        try:
            await publisher.start()
            return await follow(
                lambda: self.publish_batch(publisher), self._database_url, params.run_seconds
            )
        finally:
            await publisher.stop()

    async def publish_batch(self, publisher: KafkaEventPublisher) -> int:
        """Publish the next batch; returns how far the checkpoint moved."""
        async with self._engine.begin() as conn:
            position = await checkpoints.load(conn, RELAY_CHECKPOINT)
        page = await self._store.read_all(position, self._batch_size, wait_seconds=0.5)
        if page.next_position == position:
            return 0
        await publisher.publish(page.events)
        async with self._engine.begin() as conn:
            await checkpoints.advance(conn, RELAY_CHECKPOINT, position, page.next_position)
        return page.next_position - position
