"""Publishing stored events to Kafka as CloudEvents in binary mode."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import MessageSizeTooLargeError, ProducerClosed, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from adapters.broker_loss import TopicState
from adapters.relay_ledger import PartitionAck
from adapters.tracing import TRACEPARENT, remote_parent, traceparent_of, tracer, tracing_on
from domain.event_store import EncodedEvent, RecordedEvent

CLOUDEVENTS_SPEC_VERSION = "1.0"
MAX_BATCH_BYTES = 512 * 1024
MAX_CACHED = 100_000
"""Streams whose partition the publisher remembers before it starts over."""
DELETION_CHECKS = 50
DELETION_CHECK_SECONDS = 0.1
"""How long replace_topic waits (at most) for the broker to stop listing a deleted topic."""
ABORTED_CLOSE_SECONDS = 0.5
"""How long `stop` after an `abort` waits (at most) for the publisher's connections to close."""

log = logging.getLogger(__name__)


_SPEC_VERSION_HEADER = ("ce_specversion", CLOUDEVENTS_SPEC_VERSION.encode())
_CONTENT_TYPE_HEADER = ("content-type", b"application/json")


def cloudevent_headers(
    event: RecordedEvent, source: str, traceparent: bytes | None = None
) -> list[tuple[str, bytes]]:
    """CloudEvents binary-mode headers plus the event's stream version and global position,
    and the W3C `traceparent` of its trace when it has one."""
    return encoded_headers(encode_event(event), source.encode(), traceparent)


def encoded_headers(
    event: EncodedEvent, source: bytes, traceparent: bytes | None = None
) -> list[tuple[str, bytes]]:
    """`cloudevent_headers` of an encoded event, `source` already encoded."""
    headers = [
        _SPEC_VERSION_HEADER,
        ("ce_id", event.event_id.encode()),
        ("ce_type", event.type.encode()),
        ("ce_source", source),
        ("ce_time", event.recorded_at.isoformat().encode()),
        ("ce_subject", event.stream_id.encode()),
        _CONTENT_TYPE_HEADER,
        ("sagaline_stream_version", str(event.version).encode()),
        ("sagaline_position", str(event.position).encode()),
        ("sagaline_schema_version", str(event.schema_version).encode()),
    ]
    if traceparent is not None:
        headers.append((TRACEPARENT, traceparent))
    return headers


def message_value(event: RecordedEvent) -> bytes:
    """The message body: the event's payload and metadata as JSON."""
    return json.dumps({"data": event.data, "metadata": event.metadata}).encode()


def encode_event(event: RecordedEvent) -> EncodedEvent:
    """A decoded event in the form the publisher sends."""
    stored = (event.metadata or {}).get(TRACEPARENT)
    return EncodedEvent(
        event.position,
        event.stream_id,
        event.version,
        str(event.event_id),
        event.type,
        event.schema_version,
        event.recorded_at,
        message_value(event),
        stored if isinstance(stored, str) else None,
    )


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

    `stop` flushes what the producer still holds; after `abort` it drops it instead. The
    abort reaches into the producer (its sender's request tasks, its accumulator), as
    aiokafka has no way to close without flushing; tests/integration/test_relay_abort.py
    checks it against a real broker.
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
        self._aborted = False
        # The producer's requests of batches, each in a task of its own while it goes out
        # and waits for its answer (retries included), so `abort` can cancel them.
        self._requests: set[asyncio.Task[Any]] = set()
        self._track_requests()

    def _track_requests(self) -> None:
        """Note every produce request task of the producer's sender as it starts.

        The sender starts one task per broker for the batches it drains, and on its own
        cancellation waits for them to end, retries and all; these are what `abort` must
        cancel too. One that starts after the abort sends nothing.
        """
        sender = self._producer._sender
        send = sender._send_produce_req
        requests = self._requests

        async def tracked(node_id: int, batches: Any) -> None:
            if self._aborted:
                return
            task = asyncio.current_task()
            assert task is not None
            requests.add(task)
            try:
                await send(node_id, batches)
            finally:
                requests.discard(task)

        sender._send_produce_req = tracked

    async def start(self) -> None:
        """Connect, and create the topic if the broker does not list it."""
        await self._admin.start()
        await self._offsets.start()
        await self._producer.start()
        await self.create_topic()

    async def stop(self) -> None:
        """Flush and disconnect; after `abort`, disconnect only, within
        ABORTED_CLOSE_SECONDS."""
        if self._aborted:
            await self._close_aborted()
            return
        try:
            await self._producer.stop()
        finally:
            await self._offsets.stop()
            await self._admin.close()

    def abort(self) -> None:
        """Stop sending at once: nothing the producer holds goes out any more.

        Batches waiting in the producer fail (ProducerClosed) and are never sent, the
        requests under way are cancelled (none is sent again, and one still connecting is
        not sent at all), and every later publish fails with ProducerClosed. A request
        already written to a connection is beyond recall: the broker may still apply it.
        This returns without waiting for anything; `stop` then only disconnects.
        """
        if self._aborted:
            return
        self._aborted = True
        producer = self._producer
        sender = producer._sender
        if sender.sender_task is not None:
            sender.sender_task.cancel()
        for request in self._requests:
            request.cancel()
        accumulator = producer._message_accumulator
        held = [batch for batches in accumulator._batches.values() for batch in batches]
        held += list(accumulator._pending_batches)
        accumulator.fail_all(ProducerClosed())
        for batch in held:
            if batch.future.done() and not batch.future.cancelled():
                batch.future.exception()  # retrieved: whoever waited on it was cancelled
        # The producer's own stop would flush: `stop` disconnects it without that.
        producer._closed = True

    async def _close_aborted(self) -> None:
        """Wait for the producer's cancelled tasks to end, and disconnect everything."""
        producer = self._producer
        tasks = {task for task in (producer._sender.sender_task, *self._requests) if task}
        try:
            async with asyncio.timeout(ABORTED_CLOSE_SECONDS):
                if tasks:
                    await asyncio.wait(tasks)
                await producer.client.close()
                await self._offsets.stop()
                await self._admin.close()
        except TimeoutError:
            log.warning("kafka: connections still closing after %s s", ABORTED_CLOSE_SECONDS)

    async def create_topic(self) -> None:
        """Create the topic unless the broker lists it (never deletes anything)."""
        await ensure_topic(self._bootstrap, self._topic, self._partitions)
        await self._producer.client.force_metadata_update()

    async def replace_topic(self) -> None:
        """Delete the topic and create it empty.

        Only for a broker that showed it lost every event it acknowledged
        (adapters/broker_loss.py): a restarted in-memory broker (Tansu) takes writes for a
        topic it does not list from a producer that still knows the old metadata, and a
        topic created over them starts its offsets again over those batches, so the broker
        refuses writes at offsets that exist and shadows acknowledged events with later
        ones. Deleting clears such writes, once the topic exists: it is created first if the
        broker does not list it (on a broker that lists it, that is a no-op).
        """
        await ensure_topic(self._bootstrap, self._topic, self._partitions)
        await self._admin.delete_topics([self._topic])
        # A real Kafka deletes in the background: creating the topic while it is still
        # listed would do nothing, and producers would then auto-create it with the
        # broker's default partition count.
        for _ in range(DELETION_CHECKS):
            if self._topic not in await self._admin.list_topics():
                break
            await asyncio.sleep(DELETION_CHECK_SECONDS)
        await self.create_topic()

    async def inspect(self) -> TopicState:
        """The broker's cluster id, whether it lists the topic, and the end of each
        partition's log it reports on."""
        cluster = await self._admin.describe_cluster()
        if self._topic not in await self._admin.list_topics():
            return TopicState(cluster.get("cluster_id"), listed=False)
        partitions = await self._partition_ids()
        ends = await self._offsets.end_offsets([TopicPartition(self._topic, p) for p in partitions])
        return TopicState(
            cluster.get("cluster_id"), True, {tp.partition: int(end) for tp, end in ends.items()}
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
        return await self.publish_encoded([encode_event(event) for event in events])

    async def publish_encoded(self, events: Sequence[EncodedEvent]) -> list[PartitionAck]:
        """`publish` of events read encoded (`read_all_encoded`): their bodies go as stored."""
        partitions = sorted(await self._producer.partitions_for(self._topic))
        if partitions != self._known_partitions or len(self._stream_partitions) > MAX_CACHED:
            self._known_partitions = partitions
            self._stream_partitions = {}
        by_partition: dict[int, list[EncodedEvent]] = defaultdict(list)
        for event in events:
            by_partition[self._partition_of(event.stream_id, partitions)].append(event)
        traceparents, spans = _trace_sends(events, self._topic)
        outcomes = await asyncio.gather(
            *(self._send_in_order(p, chunk, traceparents) for p, chunk in by_partition.items()),
            return_exceptions=True,
        )
        if spans:
            for chunk, outcome in zip(by_partition.values(), outcomes, strict=True):
                _end_sends(spans, chunk, outcome)
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

    async def _send_in_order(
        self, partition: int, events: Sequence[EncodedEvent], traceparents: dict[int, bytes]
    ) -> PartitionAck:
        offsets: list[tuple[int, int]] = []
        source = self._source.encode()
        batch = self._producer.create_batch()
        for event in events:
            traceparent = traceparents.get(event.position) if traceparents else None
            if self._append(batch, event, source, traceparent):
                continue
            offsets.append(await self._send(batch, partition))
            batch = self._producer.create_batch()
            if not self._append(batch, event, source, traceparent):
                raise MessageSizeTooLargeError(f"event {event.event_id} does not fit a batch")
        if batch.record_count():
            offsets.append(await self._send(batch, partition))
        return PartitionAck(
            partition, offsets[0][0], offsets[-1][1], offsets[-1][0], events[0].position
        )

    @staticmethod
    def _append(batch: Any, event: EncodedEvent, source: bytes, traceparent: bytes | None) -> bool:
        appended = batch.append(
            timestamp=None,
            key=event.stream_id.encode(),
            value=event.body,
            headers=encoded_headers(event, source, traceparent),
        )
        return appended is not None

    async def _send(self, batch: Any, partition: int) -> tuple[int, int]:
        """Send one batch and wait for its ack; the offsets it got, first and one past last."""
        count = batch.record_count()
        delivery = await self._producer.send_batch(batch, self._topic, partition=partition)
        metadata = await delivery
        return int(metadata.offset), int(metadata.offset) + count


def _trace_sends(
    events: Sequence[EncodedEvent], topic: str
) -> tuple[dict[int, bytes], dict[int, Span]]:
    """The `traceparent` header of each event appended within a trace, and the spans of the
    sends, by position.

    An event's metadata keeps the trace of the activity that appended it. With tracing on,
    its send is a span in that trace and the header names the send; with tracing off, the
    header passes on the stored value.
    """
    traceparents: dict[int, bytes] = {}
    spans: dict[int, Span] = {}
    traced = tracing_on()
    for event in events:
        stored = event.traceparent
        if stored is None:
            continue
        if traced:
            send = tracer().start_span(
                f"send {topic}",
                context=remote_parent(stored),
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.destination.name": topic,
                    "messaging.kafka.message.key": event.stream_id,
                    "sagaline.event.type": event.type,
                    "sagaline.position": event.position,
                },
            )
            spans[event.position] = send
            stored = traceparent_of(send)
        traceparents[event.position] = stored.encode()
    return traceparents, spans


def _end_sends(spans: dict[int, Span], events: Sequence[EncodedEvent], outcome: object) -> None:
    """End the send spans of one partition's events, as failed if its publish failed."""
    for event in events:
        send = spans.get(event.position)
        if send is None:
            continue
        if isinstance(outcome, BaseException):
            send.set_status(Status(StatusCode.ERROR, type(outcome).__name__))
        send.end()


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
