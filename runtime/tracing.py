"""A process's tracer provider: spans exported over OTLP/HTTP, or to a JSON-lines file.

Installed only when tracing is on (`Settings.tracing_on`); without it OpenTelemetry's API
stays a no-op and the instrumented code skips its spans (adapters/tracing.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from runtime.config import Settings

OTLP_TRACES_PATH = "/v1/traces"


@contextmanager
def traced(settings: Settings, role: str) -> Iterator[None]:
    """Record this process's spans while the block runs (if tracing is on), flushed at its end.

    `role` names the process (`api`, `worker`): its service name is `sagaline-<role>` and,
    without OTLP, its spans go to `<data dir>/traces/<role>.jsonl`.
    """
    if not settings.tracing_on():
        yield
        return
    provider = TracerProvider(resource=Resource.create({"service.name": f"sagaline-{role}"}))
    provider.add_span_processor(BatchSpanProcessor(_exporter(settings, role)))
    trace.set_tracer_provider(provider)
    try:
        yield
    finally:
        provider.shutdown()


def _exporter(settings: Settings, role: str) -> SpanExporter:
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=otlp_traces_url(settings.otlp_endpoint))
    return JsonLinesSpanExporter(
        settings.traces_dir() / f"{role}.jsonl", settings.trace_file_max_bytes
    )


def otlp_traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base URL (or the traces URL itself)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(OTLP_TRACES_PATH) else endpoint + OTLP_TRACES_PATH


def rotated_path(path: Path) -> Path:
    """Where a full trace file goes: `api.jsonl` -> `api.1.jsonl`."""
    return path.with_name(f"{path.stem}.1{path.suffix}")


class JsonLinesSpanExporter(SpanExporter):
    """Appends every finished span to a file as one JSON object a line (`SpanLines`).

    Each export is written at once to a file opened for appending, so processes sharing the
    file do not interleave inside a line. Once the file holds `max_bytes` or more, it is
    renamed to `rotated_path` (replacing the one before) and a new file begun: spans on disk
    stay under about twice `max_bytes`. A process that finds its file renamed by another one
    sharing it opens the new file.
    """

    def __init__(self, path: Path, max_bytes: int | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self._lines = SpanLines()
        self._fd: int | None = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _rotate_if_full(self, fd: int) -> None:
        """Begin a new file if `fd`'s is full (or no longer at `path`)."""
        if self.max_bytes is None:
            return
        mine = os.fstat(fd)
        if mine.st_size < self.max_bytes:
            return
        try:
            if os.stat(self.path).st_ino == mine.st_ino:
                os.replace(self.path, rotated_path(self.path))
        except FileNotFoundError:
            pass
        self._fd = None
        os.close(fd)
        self._fd = self._open()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._fd is None:
            return SpanExportResult.FAILURE
        lines = "".join([self._lines.line(s) for s in spans]).encode()
        unwritten = memoryview(lines)
        try:
            while unwritten:
                unwritten = unwritten[os.write(self._fd, unwritten) :]
            self._rotate_if_full(self._fd)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_encode = json.JSONEncoder(default=str).encode
"""`json.dumps(value, default=str)`, without building the encoder again for every call."""

SEGMENTS_KEPT = 1024


class SpanLines:
    """A span as one line of JSON: its `trace_id`, `span_id` and `parent_id` in the hex of a
    `traceparent` header, `name`, `kind`, `service`, `start_unix_nano`, `end_unix_nano`,
    `status`, `attributes`, `events` (name and attributes) and `links` (trace and span ids),
    in that order, as `json.dumps` with `default=str` writes them, and a newline.

    The ids and times are formatted straight into the line; what repeats from span to span
    (the name, kind and service between the span id and the start time) is encoded once per
    combination; attributes, events and links go through the JSON encoder only when present.
    """

    def __init__(self) -> None:
        self._segments: dict[tuple[str, str, object], str] = {}

    def line(self, span: ReadableSpan) -> str:
        context = span.get_span_context()
        assert context is not None
        parent = span.parent
        parent_id = "null" if parent is None else f'"{parent.span_id:016x}"'
        start, end = span.start_time, span.end_time
        attributes = span.attributes
        events = span.events
        links = span.links
        return (
            f'{{"trace_id": "{context.trace_id:032x}", "span_id": "{context.span_id:016x}", '
            f'"parent_id": {parent_id}, {self._segment(span)}{"null" if start is None else start}, '
            f'"end_unix_nano": {"null" if end is None else end}, '
            f'"status": "{span.status.status_code.name}", '
            f'"attributes": {_encode(dict(attributes)) if attributes else "{}"}, '
            f'"events": {_encode(_events(span)) if events else "[]"}, '
            f'"links": {_encode(_links(span)) if links else "[]"}}}\n'
        )

    def _segment(self, span: ReadableSpan) -> str:
        """`"name": ..., "kind": ..., "service": ..., "start_unix_nano": ` of a span."""
        key = (span.name, span.kind.name, span.resource.attributes.get("service.name"))
        segment = self._segments.get(key)
        if segment is None:
            if len(self._segments) >= SEGMENTS_KEPT:
                self._segments.clear()
            name, kind, service = key
            segment = self._segments[key] = (
                f'"name": {_encode(name)}, "kind": {_encode(kind)}, '
                f'"service": {_encode(service)}, "start_unix_nano": '
            )
        return segment


def _events(span: ReadableSpan) -> list[dict[str, Any]]:
    return [
        {"name": event.name, "attributes": dict(event.attributes or {})} for event in span.events
    ]


def _links(span: ReadableSpan) -> list[dict[str, str]]:
    return [
        {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
        for link in span.links
    ]
