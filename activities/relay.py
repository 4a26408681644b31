"""The relay: publishes every stored event to Kafka, moving its checkpoint after the ack."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.following import FollowInput, follow
from adapters import checkpoints
from adapters.kafka import KafkaEventPublisher
from adapters.relay_checkpoint import RELAY_CHECKPOINT
from domain.event_store import EventStore

OUTAGE_PAUSE_SECONDS = 0.5

log = logging.getLogger(__name__)


class RelayActivities:
    """Activities of the relay singleton."""

    def __init__(
        self,
        engine: AsyncEngine,
        store: EventStore,
        database_url: str,
        publisher: Callable[[], KafkaEventPublisher],
        batch_size: int = 500,
        checkpoint: str = RELAY_CHECKPOINT,
    ) -> None:
        self._engine = engine
        self._store = store
        self._database_url = database_url
        self._publisher = publisher
        self._batch_size = batch_size
        self._checkpoint = checkpoint
        self._position: int | None = None

    @activity.defn
    async def relay_events(self, params: FollowInput) -> int:
        """Publish events in global order until the run time passes; returns how many."""
        publisher = self._publisher()
        self._position = None
        try:
            await publisher.start()
            return await follow(
                lambda: self.publish_batch(publisher), self._database_url, params.run_seconds
            )
        finally:
            await publisher.stop()

    async def publish_batch(self, publisher: KafkaEventPublisher) -> int:
        """Publish the next batch; returns how far the checkpoint moved.

        A broker outage is not an error of the relay: the batch stays unacknowledged, the
        checkpoint stays put, and the next call publishes the same events again (whatever
        part of them reached the broker arrives twice, with the same ce_id, still in order).
        """
        position = await self._current_position()
        page = await self._store.read_all(position, self._batch_size, wait_seconds=0.5)
        if page.next_position == position:
            return 0
        try:
            await publisher.publish(page.events)
        except KafkaError as error:
            log.warning("relay: broker did not acknowledge, retrying: %r", error)
            await asyncio.sleep(OUTAGE_PAUSE_SECONDS)
            return 0
        try:
            async with self._engine.begin() as conn:
                await checkpoints.advance(conn, self._checkpoint, position, page.next_position)
        except BaseException:
            self._position = None
            raise
        self._position = page.next_position
        return page.next_position - position

    async def _current_position(self) -> int:
        """The checkpoint, read once and then followed in memory.

        Only this relay moves it; if another one did (two workers briefly both running the
        singleton), `advance` fails on the stale position and the next batch reads it again.
        """
        if self._position is None:
            async with self._engine.begin() as conn:
                self._position = await checkpoints.load(conn, self._checkpoint)
        return self._position
