"""Spans written to a JSON-lines file, and trace context carried on Kafka messages."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from opentelemetry.sdk.trace import TracerProvider

from adapters.kafka import _trace_sends, cloudevent_headers, encode_event
from adapters.tracing import TRACEPARENT, current_traceparent, tracing_on, with_traceparent
from domain.event_store import RecordedEvent
from runtime.config import Settings
from runtime.tracing import JsonLinesSpanProcessor, TraceFile, otlp_traces_url, rotated_path

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
    provider.add_span_processor(JsonLinesSpanProcessor(TraceFile(path)))
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
    processor = JsonLinesSpanProcessor(
        TraceFile(path, max_bytes=2_000), flush_bytes=1 << 30, flush_seconds=3600
    )
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    names = [f"span-{index}" for index in range(60)]
    for name in names:
        with tracer.start_as_current_span(name):
            pass
        # One line a write, so every write can fill the file.
        processor.force_flush()
    provider.shutdown()
    rotated = rotated_path(path)
    assert rotated == tmp_path / "traces" / "api.1.jsonl"
    assert sorted(p.name for p in path.parent.iterdir()) == ["api.1.jsonl", "api.jsonl"]
    # Each file is cut after the write that filled it: under the bound plus one span line.
    line_bytes = max(len(line) + 1 for line in rotated.read_text().splitlines())
    for file in (path, rotated):
        assert file.stat().st_size < 2_000 + line_bytes
    kept = [
        json.loads(line)["name"] for f in (rotated, path) for line in f.read_text().splitlines()
    ]
    # The newest spans are kept, in order, and the oldest were dropped with the oldest file.
    assert kept == names[-len(kept) :] and len(kept) < len(names)


WAIT_SECONDS = 10.0
"""How long a test waits for the timer thread's write (it is due within 0.05 s)."""


def lines_in(path: Path) -> list[str]:
    """The file's whole lines: one being written while the test reads is left out."""
    return path.read_text().split("\n")[:-1] if path.exists() else []


def end_spans(provider: TracerProvider, names: list[str]) -> None:
    tracer = provider.get_tracer("test")
    for name in names:
        with tracer.start_as_current_span(name):
            pass


def wait_for_lines(path: Path, count: int) -> list[str]:
    deadline = time.monotonic() + WAIT_SECONDS
    while len(lines_in(path)) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return [json.loads(line)["name"] for line in lines_in(path)]


def test_a_full_batch_is_written_without_waiting_for_the_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "api.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(
        JsonLinesSpanProcessor(TraceFile(path), flush_bytes=1_000, flush_seconds=3600)
    )
    names = [f"span-{index}" for index in range(20)]
    end_spans(provider, names)
    # The line that filled the batch woke the writer: no flush asked for, an hour to wait.
    written = wait_for_lines(path, 3)
    assert len(written) >= 3 and written == names[: len(written)]
    provider.shutdown()
    assert [json.loads(line)["name"] for line in lines_in(path)] == names


def test_a_line_is_written_within_the_flush_interval_without_a_full_batch(
    tmp_path: Path,
) -> None:
    path = tmp_path / "api.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(
        JsonLinesSpanProcessor(TraceFile(path), flush_bytes=1 << 30, flush_seconds=0.05)
    )
    end_spans(provider, ["alone"])
    assert wait_for_lines(path, 1) == ["alone"]
    provider.shutdown()


def test_shutdown_writes_what_is_pending_then_takes_no_more_spans(tmp_path: Path) -> None:
    path = tmp_path / "api.jsonl"
    provider = TracerProvider()
    processor = JsonLinesSpanProcessor(TraceFile(path), flush_bytes=1 << 30, flush_seconds=3600)
    provider.add_span_processor(processor)
    end_spans(provider, ["a", "b"])
    assert processor.force_flush()
    assert [json.loads(line)["name"] for line in lines_in(path)] == ["a", "b"]
    end_spans(provider, ["c"])
    provider.shutdown()
    end_spans(provider, ["after"])
    processor.shutdown()
    assert [json.loads(line)["name"] for line in lines_in(path)] == ["a", "b", "c"]


class FailingOnce(TraceFile):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.failed = False

    def write(self, lines: bytes) -> None:
        if not self.failed:
            self.failed = True
            raise OSError(28, "No space left on device")
        super().write(lines)


def test_a_failed_write_drops_its_lines_with_a_warning_and_later_spans_are_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "api.jsonl"
    provider = TracerProvider()
    processor = JsonLinesSpanProcessor(FailingOnce(path), flush_bytes=1 << 30, flush_seconds=3600)
    provider.add_span_processor(processor)
    with caplog.at_level(logging.WARNING, logger="runtime.tracing"):
        end_spans(provider, ["lost"])
        processor.force_flush()
        end_spans(provider, ["kept"])
        provider.shutdown()
    assert [json.loads(line)["name"] for line in lines_in(path)] == ["kept"]
    assert "1 spans dropped: cannot write" in caplog.text
    assert "No space left on device" in caplog.text


def test_lines_past_the_backlog_are_dropped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A writer that falls behind (here: never woken) does not let waiting lines grow."""
    path = tmp_path / "api.jsonl"
    provider = TracerProvider()
    processor = JsonLinesSpanProcessor(
        TraceFile(path), flush_bytes=1 << 30, flush_seconds=3600, backlog_bytes=1_000
    )
    provider.add_span_processor(processor)
    names = [f"span-{index}" for index in range(20)]
    end_spans(provider, names)
    with caplog.at_level(logging.WARNING, logger="runtime.tracing"):
        processor.force_flush()
    kept = [json.loads(line)["name"] for line in lines_in(path)]
    assert 0 < len(kept) < len(names) and kept == names[: len(kept)]
    assert f"{len(names) - len(kept)} spans dropped: more than 1000 bytes" in caplog.text
    end_spans(provider, ["later"])
    provider.shutdown()
    assert [json.loads(line)["name"] for line in lines_in(path)] == [*kept, "later"]


def test_spans_ended_by_many_threads_each_get_one_whole_line(tmp_path: Path) -> None:
    path = tmp_path / "worker.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(
        JsonLinesSpanProcessor(TraceFile(path), flush_bytes=4_096, flush_seconds=0.01)
    )
    threads = [
        threading.Thread(target=end_spans, args=(provider, [f"t{t}-{i}" for i in range(300)]))
        for t in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    provider.shutdown()
    names = [json.loads(line)["name"] for line in lines_in(path)]
    assert sorted(names) == sorted(f"t{t}-{i}" for t in range(8) for i in range(300))
    for t in range(8):
        mine = [name for name in names if name.startswith(f"t{t}-")]
        assert mine == [f"t{t}-{i}" for i in range(300)]


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
