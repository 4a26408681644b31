"""Trace context across the hops Temporal's interceptor does not see: the append, the relay's
publish, the Kafka message and its consumers.

Only OpenTelemetry's API is used here; the process installs the SDK or not (runtime/tracing.py).
Without a tracer provider, tracing is off: no span is started and nothing is formatted, so
the hot paths pay one check.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
"""The W3C Trace Context header, and the key under which event metadata keeps it."""


def tracing_on() -> bool:
    """Whether this process installed a tracer provider."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def tracer() -> trace.Tracer:
    """sagaline's tracer from the installed provider."""
    return _tracer_of(trace.get_tracer_provider())


@functools.cache
def _tracer_of(provider: trace.TracerProvider) -> trace.Tracer:
    return provider.get_tracer("sagaline")


def span(
    name: str,
    kind: trace.SpanKind,
    attributes: Callable[[], Mapping[str, Any]],
    refusals: tuple[type[Exception], ...] = (),
) -> AbstractContextManager[object]:
    """A span made current for the block, or nothing when tracing is off (then
    `attributes` is not called).

    An exception out of the block ends the span in ERROR with an `exception` event, as the
    SDK records one. One of `refusals` (an answer its caller expects and handles, such as a
    version conflict it retries) goes without `exception.stacktrace`: formatting the
    traceback cost more than the rest of the span.
    """
    if not tracing_on():
        return nullcontext()
    return _current_span(name, kind, attributes(), refusals)


@contextmanager
def _current_span(
    name: str,
    kind: trace.SpanKind,
    attributes: Mapping[str, Any],
    refusals: tuple[type[Exception], ...],
) -> Iterator[trace.Span]:
    with tracer().start_as_current_span(
        name,
        kind=kind,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except refusals as refusal:
            current.add_event(
                "exception",
                {"exception.type": type(refusal).__name__, "exception.message": str(refusal)},
            )
            current.set_status(_error_status(refusal))
            raise
        except Exception as error:
            current.record_exception(error)
            current.set_status(_error_status(error))
            raise


def _error_status(error: Exception) -> Status:
    """ERROR, described as the SDK describes an exception out of a span."""
    return Status(StatusCode.ERROR, f"{type(error).__name__}: {error}")


def current_traceparent() -> str | None:
    """The current span as a `traceparent` value, or None when there is none."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get(TRACEPARENT)


def with_traceparent(metadata: dict[str, Any]) -> dict[str, Any]:
    """Event metadata with the current span's `traceparent`, so later hops join the trace."""
    traceparent = current_traceparent()
    if traceparent is not None:
        metadata[TRACEPARENT] = traceparent
    return metadata


def remote_parent(traceparent: str) -> Context:
    """The context a `traceparent` value names, as the parent of a span started from it."""
    return TraceContextTextMapPropagator().extract({TRACEPARENT: traceparent})


def remote_span_context(traceparent: str) -> trace.SpanContext:
    """The span a `traceparent` value names, as a link target."""
    return trace.get_current_span(remote_parent(traceparent)).get_span_context()


def traceparent_of(span_: trace.Span) -> str:
    """A span as a `traceparent` value."""
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, trace.set_span_in_context(span_))
    return carrier[TRACEPARENT]
