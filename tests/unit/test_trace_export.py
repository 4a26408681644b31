"""Spans written to a JSON-lines file, and trace context carried on Kafka messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from adapters.kafka import _trace_sends, cloudevent_headers, encode_event
from adapters.tracing import TRACEPARENT, current_traceparent, tracing_on, with_traceparent
from domain.event_store import RecordedEvent
from runtime.config import Settings
from runtime.tracing import JsonLinesSpanExporter, otlp_traces_url, rotated_path

TRACEPARENT_VALUE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def recorded(metadata: dict[str, object], position: int = 7) -> RecordedEvent:
    return RecordedEvent(
        position=position,
        stream_id="Account-1",
        version=2,
        event_id=uuid4(),
        type="MoneyDeposited",
        schema_version=1,
        data={"amount": "1.00"},
        metadata=metadata,
        recorded_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


def test_spans_are_appended_to_the_file_one_json_object_a_line(tmp_path: Path) -> None:
    path = tmp_path / "traces" / "worker.jsonl"
    provider = TracerProvider()
    exporter = JsonLinesSpanExporter(path)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("outer") as outer,
        tracer.start_as_current_span("inner", attributes={"sagaline.events": 2}),
    ):
        pass
    provider.shutdown()
    inner, written_outer = (json.loads(line) for line in path.read_text().splitlines())
    context = outer.get_span_context()
    assert written_outer["name"] == "outer" and written_outer["parent_id"] is None
    assert inner["trace_id"] == written_outer["trace_id"] == f"{context.trace_id:032x}"
    assert inner["parent_id"] == written_outer["span_id"] == f"{context.span_id:016x}"
    assert inner["attributes"] == {"sagaline.events": 2}
    assert inner["end_unix_nano"] >= inner["start_unix_nano"]


def test_a_full_trace_file_is_rotated_once_so_the_spans_on_disk_stay_bounded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "traces" / "api.jsonl"
    provider = TracerProvider()
    exporter = JsonLinesSpanExporter(path, max_bytes=2_000)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    names = [f"span-{index}" for index in range(60)]
    for name in names:
        with tracer.start_as_current_span(name):
            pass
    provider.shutdown()
    rotated = rotated_path(path)
    assert rotated == tmp_path / "traces" / "api.1.jsonl"
    assert sorted(p.name for p in path.parent.iterdir()) == ["api.1.jsonl", "api.jsonl"]
    # Each file is cut after the export that filled it: under the bound plus one span line.
    line_bytes = max(len(line) + 1 for line in rotated.read_text().splitlines())
    for file in (path, rotated):
        assert file.stat().st_size < 2_000 + line_bytes
    kept = [
        json.loads(line)["name"] for f in (rotated, path) for line in f.read_text().splitlines()
    ]
    # The newest spans are kept, in order, and the oldest were dropped with the oldest file.
    assert kept == names[-len(kept) :] and len(kept) < len(names)


def test_a_span_current_at_append_time_is_kept_in_the_events_metadata() -> None:
    tracer = TracerProvider().get_tracer("test")
    assert with_traceparent({"actor": "a"}) == {"actor": "a"}
    with tracer.start_as_current_span("activity") as span:
        metadata = with_traceparent({"actor": "a"})
        assert metadata[TRACEPARENT] == current_traceparent()
    assert metadata[TRACEPARENT].split("-")[1] == f"{span.get_span_context().trace_id:032x}"


def test_with_tracing_off_the_stored_trace_context_travels_on_as_the_header() -> None:
    assert not tracing_on()
    traced, untraced = recorded({TRACEPARENT: TRACEPARENT_VALUE}), recorded({"actor": "a"}, 8)
    headers, spans = _trace_sends([encode_event(traced), encode_event(untraced)], "sagaline.events")
    assert headers == {traced.position: TRACEPARENT_VALUE.encode()}
    assert spans == {}
    assert (TRACEPARENT, TRACEPARENT_VALUE.encode()) in cloudevent_headers(
        traced, "sagaline", headers[traced.position]
    )
    assert TRACEPARENT not in dict(cloudevent_headers(untraced, "sagaline"))


def test_tracing_is_on_when_asked_for_or_when_a_collector_is_named(tmp_path: Path) -> None:
    assert not Settings(data_dir=tmp_path).tracing_on()
    assert Settings(data_dir=tmp_path, tracing=True).tracing_on()
    assert Settings(data_dir=tmp_path, otlp_endpoint="http://collector:4318").tracing_on()
    assert Settings(data_dir=tmp_path).traces_dir() == tmp_path / "traces"


def test_the_otlp_endpoint_is_a_collector_base_or_its_traces_url() -> None:
    assert otlp_traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert otlp_traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert otlp_traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"
