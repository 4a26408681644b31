"""Publishing stored events to Kafka as CloudEvents in binary mode."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from domain.event_store import RecordedEvent

CLOUDEVENTS_SPEC_VERSION = "1.0"


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
    """Sends events keyed by stream id, so each stream stays in order on one partition."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partitions: int,
        source: str = "sagaline",
        idempotent: bool = False,
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._partitions = partitions
        self._source = source
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=idempotent,
            linger_ms=2,
            request_timeout_ms=10_000,
        )

    async def start(self) -> None:
        """Make sure the topic exists, then connect the producer."""
        await ensure_topic(self._bootstrap, self._topic, self._partitions)
        await self._producer.start()

    async def stop(self) -> None:
        """Flush and disconnect."""
        await self._producer.stop()

    async def publish(self, events: Sequence[RecordedEvent]) -> None:
        """Send every event and return once the broker acknowledged all of them."""
        deliveries = [
            await self._producer.send(
                self._topic,
                key=event.stream_id.encode(),
                value=message_value(event),
                headers=cloudevent_headers(event, self._source),
            )
            for event in events
        ]
        await asyncio.gather(*deliveries)


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
