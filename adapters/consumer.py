"""Consumers of the event topic in a Kafka consumer group, with effects that happen once.

A message's effect is stored in a Postgres transaction that also records its event id as
processed (`first_delivery`), so a redelivered message changes nothing. A fetch (every
partition of it) is stored in transactions of up to `transaction_size` messages: their ids
claimed in one statement, their first deliveries given to a batch handler in one call, one
commit; the next one's messages are decoded while the one before it is handled, and it
begins and claims once the one before it has claimed, handling only after that commit
(`adapters.fetch_transactions` says why no wait cycle can then run through Python).
From a transaction that fails on, the fetch is handled partition by partition: consecutive
messages of a partition share a transaction, and a failing one is taken out and handled
alone. Messages of types the handler does not watch (`event_types`) are passed over unread.
Offsets are committed by hand, only after the effects of every message before them are
stored. A message that keeps failing is copied to the dead-letter topic with the error in its
headers, and the partition moves on. Outages (`adapters.outages`: the database or Temporal
unreachable) are not failures of the message: it is retried until the outage ends, holding
its partition. A broker that lost its log (offsets past its end) is read again from the start.
"""

from __future__ import annotations

import asyncio
import json
import logging
from codecs import BOM_UTF8
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol, runtime_checkable

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import KafkaError
from opentelemetry.trace import Link, Span, SpanKind
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.consumer_metrics import ConsumerMetrics
from adapters.fetch_transactions import Turn, store_in_turn
from adapters.idempotency import first_deliveries, first_delivery
from adapters.kafka import ensure_topic
from adapters.outages import is_outage
from adapters.tracing import (
    TRACEPARENT,
    remote_parent,
    remote_span_context,
    tracer,
    tracing_on,
)
from domain.events import JsonDict

log = logging.getLogger(__name__)

DEAD_LETTER_SUFFIX = ".dlq"
MAX_ERROR_HEADER = 2000
END_CHECK_SECONDS = 2.0
"""How often a running consumer checks that its positions are not past the log's end."""
DECODE_SLICE = 100
"""Messages decoded between two yields to the event loop while a transaction runs beside."""


class ConsumedEvent(NamedTuple):
    """A stored event as it arrived from Kafka, decoded from its CloudEvents headers. A
    named tuple: one is built per message, and a frozen dataclass costs several times more."""

    event_id: str
    type: str
    stream_id: str
    stream_version: int
    position: int
    recorded_at: datetime
    data: JsonDict
    metadata: JsonDict
    topic: str
    partition: int
    offset: int
    traceparent: str | None = None
    """The W3C trace context the message carries, if it was published within a trace."""


Handler = Callable[[AsyncConnection, ConsumedEvent], Awaitable[None]]
"""Stores a message's effect through the given connection, inside the consumer's transaction.

A handler that is also a `BatchHandler` is given the messages of a shared transaction in one
call instead."""


@runtime_checkable
class BatchHandler(Protocol):
    """A handler that stores the effects of several messages at once, as one by one would."""

    async def handle_batch(self, conn: AsyncConnection, events: Sequence[ConsumedEvent]) -> None:
        """Store the effects of `events` (first deliveries, in partition order)."""
        ...


class UndecodableMessage(ValueError):
    """A message that is not a sagaline event (missing headers, bad JSON)."""


def _message_headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, bytes]:
    """A message's headers by name, as every reading of them takes them: of a name given
    more than once, the last value."""
    return dict(record.headers)


def decode(record: ConsumerRecord[bytes, bytes]) -> ConsumedEvent:
    """The event a message carries; UndecodableMessage when it carries none."""
    headers = _message_headers(record)
    try:
        # From text: `json.loads` of bytes first guesses their encoding, in Python. A UTF-8
        # byte order mark, which it would pass over, is passed over here too.
        value = record.value or b""
        if value.startswith(BOM_UTF8):
            value = value[len(BOM_UTF8) :]
        body = json.loads(str(value, "utf-8"))
        data, metadata = body["data"], body.get("metadata") or {}
        traceparent = headers.get(TRACEPARENT)
        return ConsumedEvent(
            headers["ce_id"].decode(),
            headers["ce_type"].decode(),
            (record.key or headers["ce_subject"]).decode(),
            int(headers["sagaline_stream_version"]),
            int(headers["sagaline_position"]),
            datetime.fromisoformat(headers["ce_time"].decode()),
            data if type(data) is dict else dict(data),
            metadata if type(metadata) is dict else dict(metadata),
            record.topic,
            record.partition,
            record.offset,
            None if traceparent is None else traceparent.decode(),
        )
    except (KeyError, ValueError, TypeError, UnicodeDecodeError) as error:
        raise UndecodableMessage(f"{type(error).__name__}: {error}") from error


@dataclass
class ConsumerStats:
    """What a consumer did since it started."""

    processed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    """Messages of types the handler does not watch, passed over without being read."""


class EventConsumer:
    """One member of a consumer group running a handler over the event topic."""

    def __init__(
        self,
        engine: AsyncEngine,
        bootstrap: str,
        topic: str,
        group_id: str,
        name: str,
        handler: Handler,
        *,
        max_attempts: int = 3,
        retry_delay: float = 0.1,
        dead_letter_topic: str | None = None,
        transient: Callable[[BaseException], bool] = is_outage,
        max_records: int = 6000,
        partitions: int = 1,
        session_timeout_ms: int = 10_000,
        rebalance_timeout_ms: int | None = None,
        transaction_size: int = 2000,
        metrics: ConsumerMetrics | None = None,
        event_types: Collection[str] | None = None,
    ) -> None:
        self._engine = engine
        self._bootstrap = bootstrap
        self._topic = topic
        self._group_id = group_id
        self._name = name
        self._handler = handler
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay
        self.dead_letter_topic = dead_letter_topic or topic + DEAD_LETTER_SUFFIX
        self._transient = transient
        self._max_records = max_records
        self._partitions = partitions
        self._session_timeout_ms = session_timeout_ms
        self._rebalance_timeout_ms = rebalance_timeout_ms
        self._transaction_size = transaction_size
        self.stats = ConsumerStats()
        self._metrics = metrics
        # The types the handler acts on (None: all). Others are passed over on their
        # `ce_type` header alone: not decoded, not claimed, their offsets committed.
        self._event_types = (
            None if event_types is None else frozenset(t.encode() for t in event_types)
        )
        # Per partition, the offset after the last message handled (for the lag).
        self._handled_up_to: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._next_end_check = 0.0
        # Whether the last claim found ids processed before: a consumer that just started, or
        # one reading messages again, claims with ON CONFLICT until a claim finds none.
        self._redelivering = True

    async def start(self) -> None:
        """Make sure both topics exist and join the group.

        Whatever it created is stopped again if it fails or is cancelled part way, so a
        consumer that never started leaves no member in the group and no open client.
        """
        try:
            await ensure_topic(self._bootstrap, self._topic, self._partitions)
            await ensure_topic(self._bootstrap, self.dead_letter_topic, 1)
            self._producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all")
            await self._producer.start()
            self._consumer = AIOKafkaConsumer(
                self._topic,
                bootstrap_servers=self._bootstrap,
                group_id=self._group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=self._session_timeout_ms,
                heartbeat_interval_ms=max(self._session_timeout_ms // 6, 100),
                rebalance_timeout_ms=self._rebalance_timeout_ms,
            )
            await self._consumer.start()
        except BaseException:
            await self.stop()
            raise
        self._next_end_check = 0.0
        self._redelivering = True

    async def stop(self) -> None:
        """Leave the group without committing anything more."""
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = None
        try:
            if consumer is not None:
                await consumer.stop()
        finally:
            if producer is not None:
                await producer.stop()

    async def rewind_past_end(self) -> list[int]:
        """Read from the start those partitions whose position lies beyond the log's end.

        A broker that lost its log (restarted in memory, failed over to an emptier cluster)
        keeps or forgets the group's offsets, and a consumer's position can point past what
        the topic holds; some brokers (Tansu) then answer fetches with nothing instead of an
        out-of-range error, so the consumer would wait for offsets that the refilled topic
        reaches only much later, skipping what lies below. The log's end is the high
        watermark of the last fetch (Tansu's offset listing gives a batch's start instead).
        Handlers are idempotent by event id: reading again changes nothing already stored.
        """
        consumer = self._consumer
        if consumer is None:
            return []
        behind: list[TopicPartition] = []
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is not None and await consumer.position(tp) > end:
                behind.append(tp)
        if behind:
            log.warning(
                "%s: positions past the end of the log on %s; reading them from the start",
                self._name,
                ", ".join(f"{tp.topic}[{tp.partition}]" for tp in behind),
            )
            await consumer.seek_to_beginning(*behind)
        return [tp.partition for tp in behind]

    async def run(self, seconds: float, progress: Callable[[int], None] | None = None) -> int:
        """Poll and handle messages for `seconds`; `progress` is told after every poll."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        handled = 0
        while loop.time() < deadline:
            handled += await self.poll(min(1.0, max(deadline - loop.time(), 0.0)))
            if progress is not None:
                progress(handled)
        return handled

    async def poll(self, wait_seconds: float = 1.0) -> int:
        """Handle one fetched batch (partitions side by side) and commit; how many messages."""
        if self._consumer is None:
            raise RuntimeError("EventConsumer is not started")
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_end_check:
            self._next_end_check = loop.time() + END_CHECK_SECONDS
            try:
                await self.rewind_past_end()
            except KafkaError as error:
                log.warning("%s: could not compare offsets with the log: %s", self._name, error)
        batch = await self._consumer.getmany(
            timeout_ms=int(wait_seconds * 1000), max_records=self._max_records
        )
        watched = self._watched(batch)
        stored = await self._handle_fetch(watched)
        rest: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        for records in watched.values():
            for record in records[max(stored, 0) :]:
                rest.setdefault(TopicPartition(record.topic, record.partition), []).append(record)
            stored -= len(records)
        if rest:
            await asyncio.gather(*(self._partition(records) for records in rest.values()))
        ends = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        if self._consumer is not None and ends:
            self._handled_up_to.update(ends)
            try:
                # One commit for every partition of the fetch, once all their effects are stored.
                await self._consumer.commit(ends)
            except KafkaError as error:
                # Stored effects are safe: what a later commit does not cover is redelivered
                # and found already processed.
                log.warning("%s: offset commit failed: %s", self._name, error)
        if self._metrics is not None:
            self._metrics.set_lag(self._name, self.lag())
        return sum(len(records) for records in batch.values())

    def _watched(
        self, batch: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]
    ) -> Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]:
        """The fetch without the messages of types the handler does not watch (a message
        without a `ce_type` header stays, to be dead-lettered as undecodable)."""
        types = self._event_types
        if types is None:
            return batch
        watched = {
            tp: [record for record in records if _is_watched(record, types)]
            for tp, records in batch.items()
        }
        skipped = sum(len(records) for records in batch.values()) - sum(
            len(records) for records in watched.values()
        )
        self.stats.skipped += skipped
        if self._metrics is not None:
            self._metrics.skipped(self._name, skipped)
        return watched

    def lag(self) -> dict[int, int]:
        """Per assigned partition, messages past the last one handled, as of the last fetch
        (partitions it has handled nothing of yet are left out)."""
        consumer = self._consumer
        if consumer is None:
            return {}
        lag: dict[int, int] = {}
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            handled_up_to = self._handled_up_to.get(tp)
            if end is not None and handled_up_to is not None:
                lag[tp.partition] = max(end - handled_up_to, 0)
        return lag

    async def _handle_fetch(
        self, batch: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]
    ) -> int:
        """Handle a whole fetch, every partition of it, in as few transactions as it takes;
        how many of its messages (in the fetch's order) got stored, the rest left untouched.

        The usual case: the fetch's messages in transactions of up to `transaction_size`,
        one claim, one handler call and one commit each, committed one after the other
        (`store_in_turn`: the next one's messages are decoded, and its ids claimed, while
        the one before it is handled). What cannot go together (a message undecodable, a
        handler failure, an outage past the claim) and what comes after it goes partition
        by partition after this.
        """
        records = [record for partition in batch.values() for record in partition]
        return await store_in_turn(records, self._transaction_size, _decoded, self._store_events)

    async def _store_events(self, events: Sequence[ConsumedEvent], turn: Turn) -> bool:
        """Store decoded messages of a fetch in one transaction, once the one before it is
        stored; False (rolled back) when the handler fails (partition by partition finds the
        culprit) or the transaction before it was not stored.

        An outage during the claim is waited out here. One after it gives False too, and
        partition by partition waits it out: the next transaction may hold claims by then,
        waiting for this one, and a claim made again here could wait for a claim that waits
        for those."""
        ids = [event.event_id for event in events]
        outages = 0
        while True:
            try:
                async with self._engine.begin() as conn:
                    fresh = await self._claim(conn, ids)
                    turn.claimed()
                    if not await turn.previous_stored():
                        raise _NotInTurn
                    first = _first_deliveries(events, fresh)
                    await self._run_handler(conn, events, first)
            except (_FailedAt, _NotInTurn):
                return False
            except Exception as error:
                if not self._transient(error):
                    raise
                log.warning("%s: outage handling a fetch: %s", self._name, error)
                if turn.has_claimed:
                    return False
                outages += 1
                await asyncio.sleep(min(self._retry_delay * 2**outages, 5.0))
                continue
            self._count(len(first), len(events) - len(first))
            return True

    async def _claim(self, conn: AsyncConnection, ids: Sequence[str]) -> set[str]:
        """Claim the ids in the transaction; those not processed before. As all new while no
        claim lately found one processed before (the cheaper insert; see `first_deliveries`)."""
        fresh = await first_deliveries(conn, self._name, ids, expect_new=not self._redelivering)
        self._redelivering = len(fresh) < len(set(ids))
        return fresh

    def _count(self, processed: int, duplicates: int) -> None:
        self.stats.processed += processed
        self.stats.duplicates += duplicates
        if self._metrics is not None:
            self._metrics.handled(self._name, processed, duplicates)

    async def _partition(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        pending = list(records)
        while pending:
            chunk = pending[: self._transaction_size]
            stored = await self._handle_together(chunk)
            pending = pending[stored:]
            if stored < len(chunk):
                # The message that stopped the shared transaction goes on its own, with its
                # attempts and, if it keeps failing, the dead-letter topic.
                await self._handle(pending.pop(0))

    async def _handle_together(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> int:
        """Handle consecutive messages in one transaction; how many from the start got stored.

        One commit for many messages is what makes the consumer fast. When a message fails,
        the transaction rolls back and the messages before it are stored again without it.
        """
        events: list[ConsumedEvent] = []
        for record in records:
            try:
                events.append(decode(record))
            except UndecodableMessage:
                break
        outages = 0
        while events:
            failed_at: int | None = None
            try:
                async with self._engine.begin() as conn:
                    fresh = await self._claim(conn, [e.event_id for e in events])
                    first = _first_deliveries(events, fresh)
                    try:
                        await self._run_handler(conn, events, first)
                    except _FailedAt as failure:
                        failed_at = failure.index
                        raise failure.error from None
            except Exception as error:
                if self._transient(error):
                    outages += 1
                    log.warning("%s: outage handling a batch: %s", self._name, error)
                    await asyncio.sleep(min(self._retry_delay * 2**outages, 5.0))
                    continue
                if failed_at is None:
                    raise
                events = events[:failed_at]
                continue
            self._count(len(first), len(events) - len(first))
            return len(events)
        return 0

    async def _run_handler(
        self, conn: AsyncConnection, events: Sequence[ConsumedEvent], first: Sequence[int]
    ) -> None:
        """Run the handler over `events[i]` for each `i` in `first` (the first deliveries).

        A failure that is not an outage comes as `_FailedAt`, naming the event to take out:
        the one that failed, or for a batch handler (which cannot tell) the first given.
        """
        handler = self._handler
        if not first:
            return
        if isinstance(handler, BatchHandler):
            try:
                await self._batch(handler, conn, [events[i] for i in first])
            except Exception as error:
                if self._transient(error):
                    raise
                raise _FailedAt(first[0], error) from error
            return
        for index in first:
            try:
                await self._handle_one(conn, events[index])
            except Exception as error:
                if self._transient(error):
                    raise
                raise _FailedAt(index, error) from error

    async def _batch(
        self, handler: BatchHandler, conn: AsyncConnection, events: Sequence[ConsumedEvent]
    ) -> None:
        """Give `events` to a batch handler in one call; with tracing on, inside one span
        linked to the trace of every message that carries one.

        The handler stays in the messages' own traces where it acts for one of them (the lock
        a match starts) through `message_span`."""
        traced = [e.traceparent for e in events if e.traceparent is not None]
        if not traced or not tracing_on():
            await handler.handle_batch(conn, events)
            return
        token = _CONSUMING.set(_Consuming(self._group_id, self._name))
        try:
            with tracer().start_as_current_span(
                f"process {events[0].topic}",
                kind=SpanKind.CONSUMER,
                links=[Link(remote_span_context(parent)) for parent in dict.fromkeys(traced)],
                attributes={
                    "messaging.system": "kafka",
                    "messaging.consumer.group.name": self._group_id,
                    "messaging.destination.name": events[0].topic,
                    "messaging.batch.message_count": len(events),
                    "sagaline.consumer": self._name,
                },
            ):
                await handler.handle_batch(conn, events)
        finally:
            _CONSUMING.reset(token)

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            event = decode(record)
        except UndecodableMessage as error:
            await self._dead_letter(record, error, attempts=1)
            return
        failures = 0
        outages = 0
        while True:
            try:
                async with self._engine.begin() as conn:
                    stored = await self._apply_in(conn, event)
                if stored:
                    self.stats.processed += 1
                else:
                    self.stats.duplicates += 1
                if self._metrics is not None:
                    self._metrics.handled(self._name, int(stored), int(not stored))
                return
            except Exception as error:
                if self._transient(error):
                    outages += 1
                    log.warning("%s: outage handling %s: %s", self._name, event.event_id, error)
                    await asyncio.sleep(min(self._retry_delay * 2**outages, 5.0))
                    continue
                failures += 1
                if failures >= self._max_attempts:
                    await self._dead_letter(record, error, failures)
                    return
                await asyncio.sleep(self._retry_delay * 2 ** (failures - 1))

    async def _apply_in(self, conn: AsyncConnection, event: ConsumedEvent) -> bool:
        """Claim the message and run the handler; False when it was processed before."""
        if not await first_delivery(conn, self._name, event.event_id):
            return False
        await self._handle_one(conn, event)
        return True

    async def _handle_one(self, conn: AsyncConnection, event: ConsumedEvent) -> None:
        """Run the handler for one claimed message, in its trace if it carries one (a batch
        handler: in a span linked to it, see `_batch`)."""
        if isinstance(self._handler, BatchHandler):
            await self._batch(self._handler, conn, [event])
            return
        if event.traceparent is None or not tracing_on():
            await self._handler(conn, event)
            return
        # The handling joins the trace of the command whose event this is.
        with tracer().start_as_current_span(
            f"process {event.topic}",
            context=remote_parent(event.traceparent),
            kind=SpanKind.CONSUMER,
            attributes=_message_attributes(event, self._group_id, self._name),
        ):
            await self._handler(conn, event)

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], error: BaseException, attempts: int
    ) -> None:
        """Copy the message to the dead-letter topic and wait for the broker's ack."""
        if self._producer is None:
            raise RuntimeError("EventConsumer is not started")
        log.error(
            "%s: dead-lettering %s[%d]@%d after %d attempts: %s",
            self._name,
            record.topic,
            record.partition,
            record.offset,
            attempts,
            error,
        )
        await self._producer.send_and_wait(
            self.dead_letter_topic,
            key=record.key,
            value=record.value,
            headers=[*record.headers, *dead_letter_headers(self._name, record, error, attempts)],
        )
        self.stats.dead_lettered += 1
        if self._metrics is not None:
            self._metrics.dead_lettered(self._name)


@dataclass(frozen=True)
class _Consuming:
    """The consumer whose batch handler is running (for `message_span`)."""

    group_id: str
    name: str


_CONSUMING: ContextVar[_Consuming | None] = ContextVar("sagaline_consuming", default=None)


def message_span(event: ConsumedEvent) -> Span | None:
    """A span in the trace of the message `event` came in, for what a batch handler does for
    that one message (the lock a match starts); None when tracing is off, the message carries
    no trace, or no consumer is handling a batch.

    The span is started but not made current: the caller makes it current around the work
    (`opentelemetry.trace.use_span`) and ends it. It has the attributes the consumer gives a
    message's span when it handles messages one by one."""
    consuming = _CONSUMING.get()
    if event.traceparent is None or consuming is None or not tracing_on():
        return None
    return tracer().start_span(
        f"process {event.topic}",
        context=remote_parent(event.traceparent),
        kind=SpanKind.CONSUMER,
        attributes=_message_attributes(event, consuming.group_id, consuming.name),
    )


def _message_attributes(event: ConsumedEvent, group_id: str, name: str) -> dict[str, Any]:
    """The attributes of the span handling one message."""
    return {
        "messaging.system": "kafka",
        "messaging.consumer.group.name": group_id,
        "messaging.destination.name": event.topic,
        "messaging.kafka.offset": event.offset,
        "messaging.kafka.message.key": event.stream_id,
        "sagaline.consumer": name,
        "sagaline.event.type": event.type,
    }


def _is_watched(record: ConsumerRecord[bytes, bytes], types: frozenset[bytes]) -> bool:
    """Whether a message's `ce_type` header is one of `types`; True when it has none.

    The headers scanned from the last, as `_message_headers` takes the last of a name
    given twice, without building their dict (this runs for every message fetched)."""
    for name, value in reversed(record.headers):
        if name == "ce_type":
            return value in types
    return True


async def _decoded(
    records: Sequence[ConsumerRecord[bytes, bytes]],
) -> list[ConsumedEvent] | None:
    """Every message's event, or None when one is undecodable.

    A slice at a time, yielding in between: the transaction before runs meanwhile, and its
    replies are taken as they come rather than after thousands of messages (milliseconds)."""
    events: list[ConsumedEvent] = []
    try:
        for start in range(0, len(records), DECODE_SLICE):
            if start:
                await asyncio.sleep(0)
            events.extend(decode(record) for record in records[start : start + DECODE_SLICE])
    except UndecodableMessage:
        return None
    return events


def _first_deliveries(events: Sequence[ConsumedEvent], fresh: set[str]) -> list[int]:
    """The indexes of the events whose ids were claimed now (`fresh`); of events sharing an
    id, the first."""
    unseen = set(fresh)
    first: list[int] = []
    for index, event in enumerate(events):
        if event.event_id in unseen:
            unseen.discard(event.event_id)
            first.append(index)
    return first


class _NotInTurn(Exception):
    """The transaction before this one in the fetch was not stored: this one rolls back."""


class _FailedAt(Exception):
    """The handler failed on `events[index]` of a shared transaction."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index, error)
        self.index = index
        self.error = error


def dead_letter_headers(
    consumer: str, record: ConsumerRecord[Any, Any], error: BaseException, attempts: int
) -> list[tuple[str, bytes]]:
    """Why and from where a message was dead-lettered, added to its original headers."""
    return [
        ("dlq_error", str(error)[:MAX_ERROR_HEADER].encode()),
        ("dlq_error_type", type(error).__name__.encode()),
        ("dlq_attempts", str(attempts).encode()),
        ("dlq_consumer", consumer.encode()),
        ("dlq_topic", record.topic.encode()),
        ("dlq_partition", str(record.partition).encode()),
        ("dlq_offset", str(record.offset).encode()),
    ]
