"""With tracing on, a batch handler still gets its messages together: one span for the batch,
linked to every message's trace, and what it does for one message (the lock a match starts)
in that message's own trace."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine

import adapters.consumer
from activities.patterns import PatternDetector
from adapters.consumer import EventConsumer
from adapters.event_store import PostgresEventStore
from adapters.tracing import TRACEPARENT, current_traceparent, traceparent_of
from domain.event_store import RecordedEvent
from domain.patterns import Pattern
from domain.users import LockUser, suspicious_activity_stream
from tests.kafka_support import FAST_GROUP, publish

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
OTHERS = 30


def traced_failure(
    position: int, user: str, version: int, minute: int, traceparent: str
) -> RecordedEvent:
    return RecordedEvent(
        position=position,
        stream_id=user,
        version=version,
        event_id=uuid.uuid4(),
        type="UserLoginFailed",
        schema_version=1,
        data={"user_id": user, "reason": "wrong password"},
        metadata={TRACEPARENT: traceparent},
        recorded_at=T0 + timedelta(minutes=minute),
    )


async def test_a_traced_batch_is_handled_together_and_a_lock_joins_its_login_trace(
    engine: AsyncEngine,
    store: PostgresEventStore,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(adapters.consumer, "tracing_on", lambda: True)
    monkeypatch.setattr(adapters.consumer, "tracer", lambda: provider.get_tracer("test"))
    tracer = provider.get_tracer("test")

    run = uuid.uuid4().hex[:8]
    topic, group = f"traced-{run}", f"traced-{run}"
    mallory = f"user-{run}-mallory"
    logins = [tracer.start_span(f"login {n}") for n in range(3 + OTHERS)]
    for login in logins:
        login.end()
    events = [
        traced_failure(n + 1, mallory, n + 1, n, traceparent_of(logins[n])) for n in range(3)
    ] + [
        traced_failure(4 + n, f"user-{run}-{n}", 1, 0, traceparent_of(logins[3 + n]))
        for n in range(OTHERS)
    ]
    await publish(kafka_bootstrap, topic, events, partitions=2)

    locks: list[tuple[LockUser, str | None]] = []

    async def record_lock(command: LockUser) -> None:
        locks.append((command, current_traceparent()))

    pattern = Pattern(f"traced-{run}", frozenset({"UserLoginFailed"}), "user_id", 3,
                      timedelta(minutes=5))  # fmt: skip
    detector = PatternDetector(store, [pattern], record_lock)
    consumer = EventConsumer(
        engine, kafka_bootstrap, topic, group, group, detector, partitions=2, **FAST_GROUP
    )
    await consumer.start()
    try:
        while consumer.stats.processed < len(events):
            await consumer.poll(0.5)
    finally:
        await consumer.stop()

    spans: list[ReadableSpan] = list(exporter.get_finished_spans())
    batches = [s for s in spans if s.name == f"process {topic}" and s.links]
    assert batches, "no batch span"
    # Every message is linked from a batch span; at least one batch held several messages.
    linked = {link.context.span_id for s in batches for link in s.links}
    assert linked == {login.get_span_context().span_id for login in logins}
    assert max(len(s.links) for s in batches) > 1
    # One message span only: for the message that completed the match, in its login's trace.
    (message,) = [s for s in spans if s.name == f"process {topic}" and not s.links]
    third = logins[2].get_span_context()
    assert message.parent is not None and message.parent.span_id == third.span_id
    assert message.context.trace_id == third.trace_id
    assert message.attributes is not None
    assert message.attributes["messaging.kafka.message.key"] == mallory
    # The lock started within that span, and the detection event carries it on.
    ((lock, lock_traceparent),) = locks
    assert lock.user_id == mallory
    assert lock_traceparent == traceparent_of(trace.NonRecordingSpan(message.context))
    (detected,) = await store.read_stream(suspicious_activity_stream(mallory))
    assert detected.metadata[TRACEPARENT] == lock_traceparent
