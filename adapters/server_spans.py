"""A cheaper way to record the API's one span per request, exported as any other span.

The SDK's `Tracer.start_as_current_span` costs about 40 µs a span here: the span's lock,
attribute cleaning into `BoundedAttributes`, bounded lists for events and links, two context
managers, the processors' `on_start`, and a `ReadableSpan` copy at the end. A request span
needs little of that: its attributes are known, it has no links and rarely an event. A
`ServerSpan` keeps what it records in plain fields and is itself the `ReadableSpan` the
tracer's span processor gets when it ends, with what the SDK's would hold (ids, parent,
resource, scope, kind, status, times, attributes and events), so the JSON-lines file and
OTLP get what they got.

What it keeps from the SDK: the tracer's sampler decides (a span it does not record is a
non-recording span, as the SDK makes), ids come from the tracer's id generator, and the
trace flags are the SDK's (sampled, and random-trace-id for a new trace). It skips the
processors' `on_start` (the batch processor does nothing there) and the span limits (its
attributes are few and set by the API).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping, Sequence
from time import time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.sampling import DEFAULT_ON, Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.util import types

log = logging.getLogger(__name__)

_PLAIN_VALUES = (str, bool, int, float)
UNSET = Status(StatusCode.UNSET)
FLAGS = {
    flags: TraceFlags(flags) for flags in range(TraceFlags.SAMPLED + TraceFlags.RANDOM_TRACE_ID + 1)
}
"""The four trace flags a span can get, made once: a `TraceFlags` is an int with a `__dict__`,
so each one made is an object the collector tracks for as long as its span is queued."""


SpanFields = tuple[
    int,  # trace id
    int,  # span id
    int | None,  # the parent's span id
    str,  # name
    SpanKind,
    Resource,
    int | None,  # start, ns since the epoch
    int | None,  # end
    StatusCode,
    Mapping[str, object],  # attributes
    Sequence[Event],
    Sequence[Link],
]
"""A span's fields as a line of the trace file shows them (runtime/tracing.py `SpanLines`)."""


class ServerSpans:
    """Starts server spans of one SDK tracer the cheap way (see the module's docstring)."""

    def __init__(self, tracer: SdkTracer) -> None:
        processor: SpanProcessor = tracer.span_processor
        self.ended = processor.on_end
        """Hands an ended span to the tracer's processors."""
        self._resource = tracer.resource
        self._sampler = tracer.sampler
        self._ids = tracer.id_generator
        self._scope = _scope_of(tracer)

    @staticmethod
    def of(tracer: trace.Tracer) -> ServerSpans | None:
        """Cheap spans for `tracer` if it is the SDK's, else None (then use the tracer)."""
        return ServerSpans(tracer) if isinstance(tracer, SdkTracer) else None

    def start(
        self, name: str, attributes: Mapping[str, types.AnyValue], parent: Context | None = None
    ) -> trace.Span:
        """A started SERVER span, child of the span current in `parent` (default: the current
        context), or a non-recording span when the sampler does not record it."""
        parent_context = trace.get_current_span(parent).get_span_context()
        if parent_context.is_valid:
            trace_id = parent_context.trace_id
            random_trace_id = parent_context.trace_flags.random_trace_id
            parent_or_none: SpanContext | None = parent_context
        else:
            trace_id = self._ids.generate_trace_id()
            random_trace_id = self._ids.is_trace_id_random()
            parent_or_none = None
        recorded = dict(attributes)
        if self._sampler is DEFAULT_ON:
            # The SDK's default: a root span is sampled, a child as its parent was, and a
            # child keeps its parent's trace state.
            sampled = recording = parent_or_none is None or parent_context.trace_flags.sampled
            trace_state: TraceState | None = (
                DEFAULT_TRACE_STATE if parent_or_none is None else parent_context.trace_state
            )
        else:
            sampling = self._sampler.should_sample(
                parent, trace_id, name, SpanKind.SERVER, attributes
            )
            sampled = sampling.decision is Decision.RECORD_AND_SAMPLE
            recording = sampling.decision is not Decision.DROP
            trace_state = sampling.trace_state
            if sampling.attributes:
                recorded = {**sampling.attributes, **recorded}
        flags = TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT
        if random_trace_id:
            flags |= TraceFlags.RANDOM_TRACE_ID
        span_id = self._ids.generate_span_id()
        context = SpanContext(
            trace_id,
            span_id,
            is_remote=False,
            trace_flags=FLAGS[flags],
            trace_state=trace_state,
        )
        if not recording:
            return trace.NonRecordingSpan(context)
        return ServerSpan(name, context, (trace_id, span_id), parent_or_none, recorded, self)


def _scope_of(tracer: SdkTracer) -> InstrumentationScope:
    info = tracer.instrumentation_info
    return InstrumentationScope(info.name, info.version, info.schema_url)


class ServerSpan(trace.Span, ReadableSpan):
    """A recording span that is its own `ReadableSpan`: what it records goes straight into
    the fields the exporters read, and once ended it takes nothing more, so the processors
    get the span itself rather than a copy (the SDK's span copies itself at its end).

    Used from one task (the request's), so it takes no lock. Attribute values that are not a
    string, bool, int or float (or a sequence of one of them) are dropped, as the SDK drops
    them.
    """

    def __init__(
        self,
        name: str,
        context: SpanContext,
        ids: tuple[int, int],
        parent: SpanContext | None,
        attributes: dict[str, Any],
        spans: ServerSpans,
    ) -> None:
        """`ids` are the context's trace and span ids, as ints."""
        self._name = name
        # The same context twice: `_context` is what ReadableSpan reads, typed as optional.
        self._context = self._span_context = context
        self._ids = ids
        self._kind = SpanKind.SERVER
        self._instrumentation_info = None
        self._instrumentation_scope = spans._scope
        self._parent = parent
        self._start_time = time_ns()
        self._end_time: int | None = None
        # The same dict twice: `_attributes` is what ReadableSpan reads, typed as a mapping.
        self._attributes = self._recorded = attributes
        self._events: tuple[Event, ...] = ()
        self._links = ()
        self._resource = spans._resource
        self._status = UNSET
        self._spans = spans

    def get_span_context(self) -> SpanContext:
        return self._span_context

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self._end_time is not None:
            log.warning("Setting attribute on ended span.")
            return
        cleaned = _cleaned(value)
        if cleaned is None or not key:
            log.warning("Invalid attribute %r dropped from span %s", key, self._name)
            return
        self._recorded[key] = cleaned

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._end_time is not None:
            return
        kept = {k: c for k, v in (attributes or {}).items() if (c := _cleaned(v)) is not None}
        self._events = (*self._events, Event(name, kept, timestamp))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        """Links are not kept: the API's request spans have none."""
        log.warning("Link dropped from span %s", self._name)

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        kind = type(exception)
        module = kind.__module__
        recorded: dict[str, types.AnyValue] = {
            "exception.type": (
                f"{module}.{kind.__qualname__}"
                if module and module != "builtins"
                else kind.__qualname__
            ),
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
            **(attributes or {}),
        }
        self.add_event("exception", recorded, timestamp)

    def fields(self) -> SpanFields:
        """What its line holds (runtime/tracing.py), read in one call rather than a dozen
        `ReadableSpan` properties."""
        parent = self._parent
        return (
            *self._ids,
            None if parent is None else parent.span_id,
            self._name,
            self._kind,
            self._resource,
            self._start_time,
            self._end_time,
            self._status.status_code,
            self._recorded,
            self._events,
            self._links,
        )

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            log.warning("Calling end() on an ended span.")
            return
        self._end_time = end_time if end_time is not None else time_ns()
        self._spans.ended(self)


def _cleaned(value: object) -> types.AnyValue | None:
    if isinstance(value, _PLAIN_VALUES):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items = tuple(value)
        kinds = {type(item) for item in items if item is not None}
        if len(kinds) <= 1 and all(kind in _PLAIN_VALUES for kind in kinds):
            return items
    return None
