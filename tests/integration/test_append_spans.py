"""An append's span: a refusal its caller handles (a version conflict) is an error without a
traceback; any other failure keeps the SDK's full record."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from sqlalchemy.ext.asyncio import AsyncEngine

import adapters.tracing
from adapters.event_store import PostgresEventStore
from domain.event_store import NO_STREAM, NewEvent, StreamAppend, WrongExpectedVersion
from tests.exported_spans import kept_spans


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    with kept_spans() as (tracer, exporter):
        monkeypatch.setattr(adapters.tracing, "tracing_on", lambda: True)
        monkeypatch.setattr(adapters.tracing, "tracer", lambda: tracer)
        yield exporter


def appending(stream: str, expected: int) -> StreamAppend:
    event = NewEvent(uuid.uuid4(), "Happened", {"n": 1}, {"actor": "test"})
    return StreamAppend(stream, [event], expected)


def only_append_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = [s for s in exporter.get_finished_spans() if s.name == "append"]
    assert len(spans) == 1
    return spans[0]


def assert_refused_without_traceback(span: ReadableSpan, error: Exception) -> None:
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == f"WrongExpectedVersion: {error}"
    assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
        ("exception", {"exception.type": "WrongExpectedVersion", "exception.message": str(error)})
    ]


async def test_a_conflicting_append_is_an_error_span_without_a_traceback(
    store: PostgresEventStore, exported: InMemorySpanExporter
) -> None:
    stream = f"spans-{uuid.uuid4()}"
    await store.append(appending(stream, NO_STREAM))
    accepted = only_append_span(exported)
    assert accepted.status.status_code is StatusCode.UNSET and not accepted.events
    exported.clear()

    with pytest.raises(WrongExpectedVersion) as refused:
        await store.append(appending(stream, NO_STREAM))
    assert_refused_without_traceback(only_append_span(exported), refused.value)


async def test_a_conflict_inside_a_callers_transaction_is_recorded_the_same_way(
    store: PostgresEventStore, engine: AsyncEngine, exported: InMemorySpanExporter
) -> None:
    stream = f"spans-{uuid.uuid4()}"
    await store.append(appending(stream, NO_STREAM))
    exported.clear()

    with pytest.raises(WrongExpectedVersion) as refused:
        async with engine.begin() as conn:
            await store.append_in(conn, appending(stream, NO_STREAM))
    assert_refused_without_traceback(only_append_span(exported), refused.value)


async def test_an_unexpected_failure_keeps_its_traceback(
    engine: AsyncEngine, exported: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PostgresEventStore(engine)

    async def broken(streams: object) -> None:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(store.appends, "append", broken)
    try:
        with pytest.raises(RuntimeError):
            await store.append(appending(f"spans-{uuid.uuid4()}", NO_STREAM))
    finally:
        await store.close()
    span = only_append_span(exported)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RuntimeError: the disk is on fire"
    (event,) = span.events
    attributes = dict(event.attributes or {})
    assert event.name == "exception"
    assert attributes["exception.type"] == "RuntimeError"
    assert attributes["exception.message"] == "the disk is on fire"
    assert "the disk is on fire" in str(attributes["exception.stacktrace"])
