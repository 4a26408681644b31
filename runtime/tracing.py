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
    """Appends every finished span to a file as one JSON object a line (`span_line`).

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
        lines = "".join(json.dumps(span_line(s), default=str) + "\n" for s in spans).encode()
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


def span_line(span: ReadableSpan) -> dict[str, Any]:
    """A span as a JSON object; ids in the hex of a `traceparent` header."""
    context = span.get_span_context()
    assert context is not None
    return {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": None if span.parent is None else f"{span.parent.span_id:016x}",
        "name": span.name,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name"),
        "start_unix_nano": span.start_time,
        "end_unix_nano": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "events": [
            {"name": event.name, "attributes": dict(event.attributes or {})}
            for event in span.events
        ],
        "links": [
            {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
    }
