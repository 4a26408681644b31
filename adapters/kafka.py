"""Publishing stored events to Kafka as CloudEvents in binary mode."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import MessageSizeTooLargeError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from domain.event_store import RecordedEvent

CLOUDEVENTS_SPEC_VERSION = "1.0"
MAX_BATCH_BYTES = 512 * 1024


def cloudevent_headers(event: RecordedEvent, source: str) -> list[tuple[str, bytes]]:
    """CloudEvents binary-mode headers plus the event's stream version and global position."""
    return [
        ("ce_specversion", CLOUDEVENTS_SPEC_VERSION.encode()),
        ("ce_id", str(event.event_id).encode()),
        ("ce_type", event.type.encode()),
        ("ce_source", source.encode()),
        ("ce_time", event.recorded_at.isoformat().encode()),
        ("ce_subject", event.stream_id.encode()),
        ("content-type", b"application/json"),
        ("sagaline_stream_version", str(event.version).encode()),
        ("sagaline_position", str(event.position).encode()),
        ("sagaline_schema_version", str(event.schema_version).encode()),
    ]


def message_value(event: RecordedEvent) -> bytes:
    """The message body: the event's payload and metadata as JSON."""
    return json.dumps({"data": event.data, "metadata": event.metadata}).encode()


class KafkaEventPublisher:
    """Sends events keyed by stream id, so each stream stays in order on one partition.

    Events go out as explicit batches, one partition's batches strictly one after another,
    each sent only once the broker acknowledged the one before. The producer's own
    accumulator would keep sending a partition's later batches after an earlier one expired
    during an outage, putting a stream's events out of order on the topic; this way a
    failed publish has written, per partition, at most a prefix of what it was given, and
    publishing the same events again (the relay does, from its checkpoint) keeps every
    stream's first copies in version order. Duplicates carry the same `ce_id`.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partitions: int,
        source: str = "sagaline",
        idempotent: bool = False,
        request_timeout_ms: int = 5_000,
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._partitions = partitions
        self._source = source
        self._partitioner = DefaultPartitioner()
        self.idempotent = idempotent
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=idempotent,
            max_batch_size=MAX_BATCH_BYTES,
            request_timeout_ms=request_timeout_ms,
        )

    async def start(self) -> None:
        """Make sure the topic exists, then connect the producer."""
        await ensure_topic(self._bootstrap, self._topic, self._partitions)
        await self._producer.start()

    async def stop(self) -> None:
        """Flush and disconnect."""
        await self._producer.stop()

    async def publish(self, events: Sequence[RecordedEvent]) -> None:
        """Send every event; returns once the broker acknowledged all, raises KafkaError if not."""
        partitions = sorted(await self._producer.partitions_for(self._topic))
        by_partition: dict[int, list[RecordedEvent]] = defaultdict(list)
        for event in events:
            partition = self._partitioner(event.stream_id.encode(), partitions, partitions)
            by_partition[partition].append(event)
        outcomes = await asyncio.gather(
            *(self._send_in_order(p, chunk) for p, chunk in by_partition.items()),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _send_in_order(self, partition: int, events: Sequence[RecordedEvent]) -> None:
        batch = self._producer.create_batch()
        for event in events:
            if self._append(batch, event):
                continue
            await self._send(batch, partition)
            batch = self._producer.create_batch()
            if not self._append(batch, event):
                raise MessageSizeTooLargeError(f"event {event.event_id} does not fit a batch")
        if batch.record_count():
            await self._send(batch, partition)

    def _append(self, batch: Any, event: RecordedEvent) -> bool:
        appended = batch.append(
            timestamp=None,
            key=event.stream_id.encode(),
            value=message_value(event),
            headers=cloudevent_headers(event, self._source),
        )
        return appended is not None

    async def _send(self, batch: Any, partition: int) -> None:
        delivery = await self._producer.send_batch(batch, self._topic, partition=partition)
        await delivery


async def ensure_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create the topic unless it exists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
