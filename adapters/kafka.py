"""Publishing stored events to Kafka as CloudEvents in binary mode."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import MessageSizeTooLargeError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from adapters.relay_ledger import PartitionAck
from domain.event_store import RecordedEvent

CLOUDEVENTS_SPEC_VERSION = "1.0"
MAX_BATCH_BYTES = 512 * 1024
MAX_CACHED = 100_000
"""Streams whose partition the publisher remembers before it starts over."""


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


@dataclass(frozen=True)
class TopicState:
    """What the broker holds of the topic: its cluster, and per partition the log's end."""

    cluster_id: str | None
    ends: dict[int, int]


class KafkaEventPublisher:
    """Sends events keyed by stream id, so each stream stays in order on one partition.

    Events go out as explicit batches, one partition's batches strictly one after another,
    each sent only once the broker acknowledged the one before. The producer's own
    accumulator would keep sending a partition's later batches after an earlier one expired
    during an outage, putting a stream's events out of order on the topic; this way a
    failed publish has written, per partition, at most a prefix of what it was given, and
    publishing the same events again (the relay does, from its checkpoint) keeps every
    stream's first copies in version order. Duplicates carry the same `ce_id`.

    `publish` returns, per partition, the offsets the broker gave the events, and `inspect`
    what the broker holds now, so the relay can tell when the broker lost what it
    acknowledged.
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
        self._known_partitions: list[int] = []
        self._stream_partitions: dict[str, int] = {}
        self.idempotent = idempotent
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=idempotent,
            max_batch_size=MAX_BATCH_BYTES,
            request_timeout_ms=request_timeout_ms,
        )
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=request_timeout_ms
        )
        self._offsets = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, request_timeout_ms=request_timeout_ms
        )

    async def start(self) -> None:
        """Connect, and make sure the topic exists."""
        await self._admin.start()
        await self._offsets.start()
        await self._producer.start()
        await self.prepare_topic()

    async def stop(self) -> None:
        """Flush and disconnect."""
        try:
            await self._producer.stop()
        finally:
            await self._offsets.stop()
            await self._admin.close()

    async def prepare_topic(self) -> bool:
        """Create the topic if the broker does not list it; True if it had to.

        A restarted in-memory broker (Tansu) takes writes for a topic it does not list from
        a producer that still knows the old metadata, and a topic created afterwards starts
        its offsets again over those batches: the broker then refuses writes at offsets
        that exist and shadows acknowledged events with later ones. Deleting the unlisted
        topic first clears such writes; on a broker that has no such topic it is a no-op.
        """
        if self._topic in await self._admin.list_topics():
            return False
        await self._admin.delete_topics([self._topic])
        await ensure_topic(self._bootstrap, self._topic, self._partitions)
        await self._producer.client.force_metadata_update()
        return True

    async def recreate_topic(self) -> None:
        """Delete the topic and create it empty (the broker lost what it acknowledged)."""
        await self._admin.delete_topics([self._topic])
        await ensure_topic(self._bootstrap, self._topic, self._partitions)
        await self._producer.client.force_metadata_update()

    async def inspect(self) -> TopicState:
        """The broker's cluster id and, per partition of the topic, the end of its log."""
        cluster = await self._admin.describe_cluster()
        partitions = await self._partition_ids()
        ends = await self._offsets.end_offsets([TopicPartition(self._topic, p) for p in partitions])
        return TopicState(
            cluster.get("cluster_id"), {tp.partition: int(end) for tp, end in ends.items()}
        )

    async def _partition_ids(self) -> list[int]:
        described = await self._admin.describe_topics([self._topic])
        return sorted(
            int(partition["partition"])
            for topic in described
            if topic["topic"] == self._topic
            for partition in topic["partitions"]
        )

    async def publish(self, events: Sequence[RecordedEvent]) -> list[PartitionAck]:
        """Send every event; what the broker acknowledged, or KafkaError if not all of it."""
        partitions = sorted(await self._producer.partitions_for(self._topic))
        if partitions != self._known_partitions or len(self._stream_partitions) > MAX_CACHED:
            self._known_partitions = partitions
            self._stream_partitions = {}
        by_partition: dict[int, list[RecordedEvent]] = defaultdict(list)
        for event in events:
            by_partition[self._partition_of(event.stream_id, partitions)].append(event)
        outcomes = await asyncio.gather(
            *(self._send_in_order(p, chunk) for p, chunk in by_partition.items()),
            return_exceptions=True,
        )
        acks: list[PartitionAck] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            acks.append(outcome)
        return acks

    def _partition_of(self, stream_id: str, partitions: list[int]) -> int:
        """The producer's own choice for the key (murmur2, in Python), kept per stream."""
        partition = self._stream_partitions.get(stream_id)
        if partition is None:
            partition = self._partitioner(stream_id.encode(), partitions, partitions)
            self._stream_partitions[stream_id] = partition
        return partition

    async def _send_in_order(self, partition: int, events: Sequence[RecordedEvent]) -> PartitionAck:
        offsets: list[tuple[int, int]] = []
        batch = self._producer.create_batch()
        for event in events:
            if self._append(batch, event):
                continue
            offsets.append(await self._send(batch, partition))
            batch = self._producer.create_batch()
            if not self._append(batch, event):
                raise MessageSizeTooLargeError(f"event {event.event_id} does not fit a batch")
        if batch.record_count():
            offsets.append(await self._send(batch, partition))
        return PartitionAck(
            partition, offsets[0][0], offsets[-1][1], offsets[-1][0], events[0].position
        )

    def _append(self, batch: Any, event: RecordedEvent) -> bool:
        appended = batch.append(
            timestamp=None,
            key=event.stream_id.encode(),
            value=message_value(event),
            headers=cloudevent_headers(event, self._source),
        )
        return appended is not None

    async def _send(self, batch: Any, partition: int) -> tuple[int, int]:
        """Send one batch and wait for its ack; the offsets it got, first and one past last."""
        count = batch.record_count()
        delivery = await self._producer.send_batch(batch, self._topic, partition=partition)
        metadata = await delivery
        return int(metadata.offset), int(metadata.offset) + count


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
