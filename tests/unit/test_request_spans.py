"""The API's request span, recorded the cheap way, is the span the SDK would have exported;
and the JSON-lines exporter writes what `json.dumps(span_line(span))` writes, `span_line`
being the line's fields spelt out plainly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import Link, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import Message, Receive, Scope, Send

import adapters.tracing
import api.tracing
from adapters.server_spans import ServerSpan, ServerSpans
from api.tracing import SPAN_NAME, TraceRequests
from runtime.tracing import SpanLines
from tests.exported_spans import kept_spans

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


def span_line(span: ReadableSpan) -> dict[str, Any]:
    """A span as the JSON object of its line, spelt out: what `SpanLines` must write."""
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


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """An SDK provider as the API's tracer, its spans kept in memory."""
    with kept_spans("sagaline-api") as (tracer, exporter):
        monkeypatch.setattr(adapters.tracing, "tracer", lambda: tracer)
        monkeypatch.setattr(api.tracing, "tracer", lambda: tracer)
        yield exporter


def request(headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    return {"type": "http", "method": "POST", "path": "/graphql", "headers": headers or []}


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def answering(status: int, seen: list[trace.Span] | None = None) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if seen is not None:
            seen.append(trace.get_current_span())
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


def serve(app: Any, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(TraceRequests(app)(scope, receive, send))
    return sent


def test_a_request_span_is_exported_as_the_sdk_would_export_it(
    exported: InMemorySpanExporter,
) -> None:
    seen: list[trace.Span] = []
    sent = serve(answering(200, seen), request())
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    (span,) = exported.get_finished_spans()
    # The same span made with the SDK's tracer, for comparison.
    sdk = adapters.tracing.tracer()
    with sdk.start_as_current_span(
        SPAN_NAME,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST", "url.path": "/graphql"},
    ) as made:
        made.set_attribute("http.response.status_code", 200)
    reference = exported.get_finished_spans()[1]
    assert isinstance(seen[0], ServerSpan) and seen[0].get_span_context() == span.context
    assert span.context is not None and reference.context is not None
    assert span.context.trace_flags == reference.context.trace_flags
    assert span.context.trace_flags.sampled and not span.context.is_remote
    assert span.parent is None and span.kind is SpanKind.SERVER
    assert (
        dict(span.attributes or {})
        == dict(reference.attributes or {})
        == {
            "http.request.method": "POST",
            "url.path": "/graphql",
            "http.response.status_code": 200,
        }
    )
    assert span.resource is reference.resource
    assert span.instrumentation_scope == reference.instrumentation_scope
    assert span.status.status_code is StatusCode.UNSET and not span.events
    assert span.start_time is not None and span.end_time is not None
    assert span.end_time >= span.start_time
    line, expected = (json.loads(SpanLines().line(s)) for s in (span, reference))
    different = {"trace_id", "span_id", "start_unix_nano", "end_unix_nano"}
    assert {k: v for k, v in line.items() if k not in different} == {
        k: v for k, v in expected.items() if k not in different
    }


def test_a_caller_traceparent_makes_the_request_span_its_child(
    exported: InMemorySpanExporter,
) -> None:
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01".encode()
    serve(answering(200), request([(b"content-type", b"json"), (b"traceparent", traceparent)]))
    (span,) = exported.get_finished_spans()
    assert span.context is not None and span.parent is not None
    assert f"{span.context.trace_id:032x}" == CALLER_TRACE
    assert f"{span.parent.span_id:016x}" == CALLER_SPAN and span.parent.is_remote
    # The SDK's tracer gives a child of the same parent the same flags and trace state.
    parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent.decode()})
    with adapters.tracing.tracer().start_as_current_span("reference", context=parent) as made:
        assert made.get_span_context().trace_flags == span.context.trace_flags
        assert made.get_span_context().trace_state == span.context.trace_state


def test_a_caller_that_did_not_sample_its_trace_gets_no_request_span(
    exported: InMemorySpanExporter,
) -> None:
    seen: list[trace.Span] = []
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-00".encode()
    serve(answering(200, seen), request([(b"traceparent", traceparent)]))
    assert exported.get_finished_spans() == ()
    (current,) = seen
    assert not current.is_recording()
    assert f"{current.get_span_context().trace_id:032x}" == CALLER_TRACE
    assert not current.get_span_context().trace_flags.sampled


def test_a_server_error_or_an_exception_marks_the_span_an_error(
    exported: InMemorySpanExporter,
) -> None:
    serve(answering(503), request())

    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("broken")

    with pytest.raises(RuntimeError):
        serve(failing, request())
    answered, raised = exported.get_finished_spans()
    assert answered.status.status_code is StatusCode.ERROR
    assert (answered.attributes or {})["http.response.status_code"] == 503
    assert raised.status.status_code is StatusCode.ERROR
    assert raised.status.description == "RuntimeError: broken"
    (event,) = raised.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "RuntimeError"
    assert "broken" in str((event.attributes or {})["exception.stacktrace"])
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_a_span_the_sampler_drops_is_not_recorded() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = ServerSpans.of(provider.get_tracer("sagaline"))
    assert spans is not None
    span = spans.start(SPAN_NAME, {"url.path": "/graphql"})
    assert not span.is_recording() and not span.get_span_context().trace_flags.sampled
    span.end()
    assert exporter.get_finished_spans() == ()
    assert ServerSpans.of(trace.NoOpTracer()) is None


def test_invalid_attribute_values_are_dropped_and_an_ended_span_takes_no_more() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = ServerSpans.of(provider.get_tracer("sagaline"))
    assert spans is not None
    span = spans.start(SPAN_NAME, {})
    span.set_attribute("ok", [1, 2])
    span.set_attribute("mixed", [1, "a"])
    span.set_attribute("object", object())  # type: ignore[arg-type]
    span.set_status(StatusCode.OK)
    span.set_status(StatusCode.ERROR)
    span.end()
    span.set_attribute("late", 1)
    (done,) = exporter.get_finished_spans()
    assert dict(done.attributes or {}) == {"ok": (1, 2)}
    assert done.status.status_code is StatusCode.OK


def varied_spans() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "sagaline-wörker"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    outer = tracer.start_span('outer "quoted" ünïcode', kind=SpanKind.CLIENT)
    with (
        trace.use_span(outer, end_on_exit=True),
        tracer.start_as_current_span(
            "inner",
            attributes={"n": 2, "f": 1.5, "b": True, "s": "é\n", "list": ["a", "b"]},
            links=[Link(outer.get_span_context())],
        ) as inner,
    ):
        inner.add_event("happened", {"why": "because"})
        inner.set_status(StatusCode.ERROR, "bad")
    no_service = TracerProvider(resource=Resource.get_empty())
    no_service.add_span_processor(SimpleSpanProcessor(exporter))
    with no_service.get_tracer("test").start_as_current_span("bare"):
        pass
    # Request spans, whose lines are made from `ServerSpan.fields`.
    spans = ServerSpans.of(tracer)
    assert spans is not None
    root = spans.start(SPAN_NAME, {"http.request.method": "POST"})
    root.set_attribute("http.response.status_code", 200)
    root.end()
    caller = TraceContextTextMapPropagator().extract(
        {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
    )
    child = spans.start(SPAN_NAME, {"http.request.method": "POST"}, caller)
    child.record_exception(ValueError('bad "input"'))
    child.set_status(StatusCode.ERROR, "ValueError")
    child.end()
    return list(exporter.get_finished_spans())


def test_span_lines_are_byte_for_byte_the_json_of_span_line() -> None:
    spans = varied_spans()
    assert [type(span) for span in spans[3:]] == [ServerSpan, ServerSpan]
    assert spans[4].parent is not None and spans[4].events
    lines = SpanLines()
    for span in spans * 2:
        assert lines.line(span) == json.dumps(span_line(span), default=str) + "\n"


def test_equal_attribute_values_of_other_types_are_not_taken_for_each_other() -> None:
    """SpanLines keeps the JSON of attributes it saw; 1, True and 1.0 are equal in Python, as
    are 0.0 and -0.0, and each must still be written as itself."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    values: list[Any] = [1, True, 1.0, 0, False, 0.0, -0.0, "1", (1, 2), (True, False), 1]
    for value in values:
        with tracer.start_as_current_span("same", attributes={"value": value, "path": "/"}):
            pass
    lines = SpanLines()
    written = [lines.line(span) for span in exporter.get_finished_spans()]
    for line, span in zip(written, exporter.get_finished_spans(), strict=True):
        assert line == json.dumps(span_line(span), default=str) + "\n"
    assert [json.loads(line)["attributes"]["value"] for line in written][:7] == [
        1,
        True,
        1.0,
        0,
        False,
        0.0,
        -0.0,
    ]
    assert ['"value": -0.0' in line for line in written][5:7] == [False, True]


def test_a_request_span_encodes_for_otlp(exported: InMemorySpanExporter) -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("bad input")

    serve(answering(200), request())
    with pytest.raises(ValueError):
        serve(failing, request())
    request_span = encode_spans(exported.get_finished_spans()).resource_spans[0]
    (scope_spans,) = request_span.scope_spans
    assert scope_spans.scope.name == "sagaline"
    answered, raised = scope_spans.spans
    assert answered.name == SPAN_NAME and answered.kind == answered.SPAN_KIND_SERVER
    assert {a.key: a.value.int_value for a in answered.attributes}[
        "http.response.status_code"
    ] == 200
    assert [event.name for event in raised.events] == ["exception"]
    assert {a.key: a.value.string_value for a in request_span.resource.attributes}[
        "service.name"
    ] == "sagaline-api"
