"""A process's tracer provider: spans exported over OTLP/HTTP, or to a JSON-lines file.

Installed only when tracing is on (`Settings.tracing_on`); without it OpenTelemetry's API
stays a no-op and the instrumented code skips its spans (adapters/tracing.py).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, SpanKind

from adapters.server_spans import ServerSpan, SpanFields
from runtime.config import Settings

log = logging.getLogger(__name__)

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
    provider.add_span_processor(_span_processor(settings, role))
    trace.set_tracer_provider(provider)
    try:
        yield
    finally:
        provider.shutdown()


def _span_processor(settings: Settings, role: str) -> SpanProcessor:
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return BatchSpanProcessor(
            OTLPSpanExporter(endpoint=otlp_traces_url(settings.otlp_endpoint))
        )
    return JsonLinesSpanProcessor(
        TraceFile(settings.traces_dir() / f"{role}.jsonl", settings.trace_file_max_bytes)
    )


def otlp_traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base URL (or the traces URL itself)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(OTLP_TRACES_PATH) else endpoint + OTLP_TRACES_PATH


def rotated_path(path: Path) -> Path:
    """Where a full trace file goes: `api.jsonl` -> `api.1.jsonl`."""
    return path.with_name(f"{path.stem}.1{path.suffix}")


class TraceFile:
    """A trace file that lines of spans are appended to.

    Each write goes at once to a file opened for appending, so processes sharing the file do
    not interleave inside a line. Once the file holds `max_bytes` or more, it is renamed to
    `rotated_path` (replacing the one before) and a new file begun: spans on disk stay under
    about twice `max_bytes`. A process that finds its file renamed by another one sharing it
    opens the new file.
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

    def write(self, lines: bytes) -> None:
        """Append `lines` whole, then rotate if the file is full; raises OSError if it
        cannot, or if the file is closed."""
        if self._fd is None:
            raise OSError(f"{self.path} is closed")
        unwritten = memoryview(lines)
        while unwritten:
            unwritten = unwritten[os.write(self._fd, unwritten) :]
        self._rotate_if_full(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


FLUSH_BYTES = 64 * 1024
"""How many bytes of lines `JsonLinesSpanProcessor` gathers before it writes them."""
FLUSH_SECONDS = 1.0
"""How long a line waits at most before `JsonLinesSpanProcessor` writes it."""
BACKLOG_BYTES = 8 * 1024 * 1024
"""How many bytes of lines may wait for the writer (a slow or stuck disk); lines past that
are dropped and counted."""


class JsonLinesSpanProcessor(SpanProcessor):
    """Writes every ended span to a `TraceFile` as one line of JSON (`SpanLines`).

    A span is formatted as it ends, by the thread that ends it, and not kept: what waits is
    its line, a string, rather than the span and the objects it holds. A writer thread
    appends the waiting lines to the file, woken once FLUSH_BYTES of them wait, else every
    FLUSH_SECONDS; `force_flush` and `shutdown` write them too. Writes never happen on the
    thread that ended a span, so a slow disk does not hold up a request or a workflow
    task. At most `backlog_bytes` of lines wait; past that, lines are dropped and the next
    write warns how many. A write that fails drops its lines with a warning.

    The SDK's batch processor instead queues each span for its export thread to format
    later, holding the GIL while it formats up to 512 of them: the on side's p99 was about
    15 % higher with it (BENCHMARKS.md, *trace files written by a processor of our own*).
    """

    def __init__(
        self,
        file: TraceFile,
        *,
        flush_bytes: int = FLUSH_BYTES,
        flush_seconds: float = FLUSH_SECONDS,
        backlog_bytes: int = BACKLOG_BYTES,
    ) -> None:
        self._file = file
        self._flush_bytes = flush_bytes
        self._flush_seconds = flush_seconds
        self._backlog_bytes = backlog_bytes
        self._lines = SpanLines()
        self._waiting: list[str] = []
        self._waiting_bytes = 0
        self._dropped = 0
        self._stopped = False
        self._lock = threading.Lock()
        """Guards the waiting lines, their size, the dropped count and `_stopped`."""
        self._write_lock = threading.Lock()
        """Held while lines are written, so batches reach the file in the order taken."""
        self._full = threading.Event()
        self._writer = threading.Thread(
            target=self._write_regularly, name="trace-file", daemon=True
        )
        self._writer.start()

    def on_end(self, span: ReadableSpan) -> None:
        line = self._lines.line(span)
        with self._lock:
            if self._stopped:
                return
            if self._waiting_bytes >= self._backlog_bytes:
                self._dropped += 1
                return
            self._waiting.append(line)
            self._waiting_bytes += len(line)
            full = self._waiting_bytes >= self._flush_bytes
        if full and not self._full.is_set():
            self._full.set()

    def _write_regularly(self) -> None:
        while True:
            self._full.wait(self._flush_seconds)
            self._full.clear()
            with self._lock:
                if self._stopped:
                    return
            self._write_waiting()

    def _write_waiting(self) -> None:
        with self._write_lock:
            with self._lock:
                lines, self._waiting, self._waiting_bytes = self._waiting, [], 0
                dropped, self._dropped = self._dropped, 0
            if dropped:
                log.warning(
                    "%d spans dropped: more than %d bytes of lines waited for %s",
                    dropped,
                    self._backlog_bytes,
                    self._file.path,
                )
            if not lines:
                return
            try:
                self._file.write("".join(lines).encode())
            except OSError as error:
                log.warning(
                    "%d spans dropped: cannot write %s: %s", len(lines), self._file.path, error
                )

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._write_waiting()
        return True

    def shutdown(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._full.set()
        self._writer.join()
        self._write_waiting()
        with self._write_lock:
            self._file.close()


_encode = json.JSONEncoder(default=str).encode
"""`json.dumps(value, default=str)`, without building the encoder again for every call."""

SEGMENTS_KEPT = 1024
"""How many segments, and how many attribute objects, `SpanLines` keeps encoded."""
_REPEATABLE_KINDS = frozenset({str, int, bool})
K = TypeVar("K")
V = TypeVar("V")


class SpanLines:
    """A span as one line of JSON: its `trace_id`, `span_id` and `parent_id` in the hex of a
    `traceparent` header, `name`, `kind`, `service`, `start_unix_nano`, `end_unix_nano`,
    `status`, `attributes`, `events` (name and attributes) and `links` (trace and span ids),
    in that order, as `json.dumps` with `default=str` writes them, and a newline.

    The ids and times are formatted straight into the line; what repeats from span to span
    is encoded once per combination: the name, kind and service between the span id and the
    start time, and attributes whose values are all strings, ints or bools (a request's
    method, path and status). Other attributes, events and links go through the JSON encoder
    only when present.
    """

    def __init__(self) -> None:
        self._segments: dict[tuple[str, str, int], tuple[Resource, str]] = {}
        self._attribute_objects: dict[tuple[object, ...], str] = {}

    def line(self, span: ReadableSpan) -> str:
        # The API's request span, the commonest, hands over its fields in one call.
        fields = span.fields() if type(span) is ServerSpan else _fields(span)
        (
            trace_id,
            span_id,
            parent_id,
            name,
            kind,
            resource,
            start,
            end,
            status,
            attributes,
            events,
            links,
        ) = fields
        parent = "null" if parent_id is None else f'"{parent_id:016x}"'
        return (
            f'{{"trace_id": "{trace_id:032x}", "span_id": "{span_id:016x}", '
            f'"parent_id": {parent}, '
            f"{self._segment(name, kind, resource)}{'null' if start is None else start}, "
            f'"end_unix_nano": {"null" if end is None else end}, '
            f'"status": "{status._name_}", '
            f'"attributes": {self._attributes(attributes) if attributes else "{}"}, '
            f'"events": {_encode(_events(events)) if events else "[]"}, '
            f'"links": {_encode(_links(links)) if links else "[]"}}}\n'
        )

    def _attributes(self, attributes: Mapping[str, object]) -> str:
        """The JSON object of `attributes`, kept for the next span with the same ones when
        every value is a str, int or bool: equal values of those exact types encode alike
        (not so for floats: 0.0 == -0.0)."""
        kinds = tuple(map(type, attributes.values()))
        if not _REPEATABLE_KINDS.issuperset(kinds):
            return _encode(dict(attributes))
        key = (*attributes.items(), kinds)
        encoded = self._attribute_objects.get(key)
        if encoded is None:
            encoded = _keep(self._attribute_objects, key, _encode(dict(attributes)))
        return encoded

    def _segment(self, name: str, kind: SpanKind, resource: Resource) -> str:
        """`"name": ..., "kind": ..., "service": ..., "start_unix_nano": ` of a span."""
        # By the resource's identity, kept alive beside its segment so the id is not reused;
        # by the kind's name (`_name_`, a plain attribute), as an enum member's hash and
        # `name` are Python calls.
        key = (name, kind._name_, id(resource))
        kept = self._segments.get(key)
        if kept is None:
            service = resource.attributes.get("service.name")
            segment = (
                f'"name": {_encode(name)}, "kind": {_encode(kind._name_)}, '
                f'"service": {_encode(service)}, "start_unix_nano": '
            )
            kept = _keep(self._segments, key, (resource, segment))
        return kept[1]


def _keep(kept: dict[K, V], key: K, value: V) -> V:
    """`value` kept under `key`, the whole dict cleared first once it holds SEGMENTS_KEPT."""
    if len(kept) >= SEGMENTS_KEPT:
        kept.clear()
    kept[key] = value
    return value


def _fields(span: ReadableSpan) -> SpanFields:
    context = span.get_span_context()
    assert context is not None
    parent = span.parent
    return (
        context.trace_id,
        context.span_id,
        None if parent is None else parent.span_id,
        span.name,
        span.kind,
        span.resource,
        span.start_time,
        span.end_time,
        span.status.status_code,
        span.attributes or {},
        span.events,
        span.links,
    )


def _events(events: Sequence[Event]) -> list[dict[str, Any]]:
    return [{"name": event.name, "attributes": dict(event.attributes or {})} for event in events]


def _links(links: Sequence[Link]) -> list[dict[str, str]]:
    return [
        {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
        for link in links
    ]
