"""An SDK tracer whose ended spans are kept in memory, for tests that check what was traced."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@contextmanager
def kept_spans(service: str | None = None) -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    """A `sagaline` tracer and the exporter its spans end in, shut down after the block."""
    exporter = InMemorySpanExporter()
    resource = Resource.create({"service.name": service}) if service else None
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield provider.get_tracer("sagaline"), exporter
    finally:
        provider.shutdown()
