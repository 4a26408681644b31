"""The API's span: one server span per GraphQL request over HTTP, the root of a mutation's
trace (or a child of the caller's, when it sends a `traceparent` header)."""

from __future__ import annotations

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.server_spans import ServerSpans
from adapters.tracing import tracer

GRAPHQL_PATH = "/graphql"
SPAN_NAME = f"POST {GRAPHQL_PATH}"
SPAN_ATTRIBUTES = {"http.request.method": "POST", "url.path": GRAPHQL_PATH}
TRACEPARENT_HEADER = b"traceparent"


class TraceRequests:
    """Wraps every GraphQL POST in a span, its status code recorded.

    Added only when tracing is on. GET only serves GraphiQL (and `up`'s readiness probe);
    websockets (subscriptions live for long) are not traced. With the SDK's tracer the span
    is a `ServerSpan` (adapters/server_spans.py), the same span exported at a fraction of
    the cost; the caller's trace context is read only when the request carries one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._spans: ServerSpans | None = None
        self._tracer: trace.Tracer | None = None

    def _start_span(self, scope: Scope, current: Context) -> trace.Span:
        """The request's span, child of the caller's or else of the span in `current`."""
        tracer_ = tracer()
        if tracer_ is not self._tracer:
            self._tracer, self._spans = tracer_, ServerSpans.of(tracer_)
        caller = _caller_context(scope)
        parent = current if caller is None else caller
        if self._spans is not None:
            return self._spans.start(SPAN_NAME, SPAN_ATTRIBUTES, parent)
        return tracer_.start_span(
            SPAN_NAME, context=parent, kind=SpanKind.SERVER, attributes=SPAN_ATTRIBUTES
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != GRAPHQL_PATH:
            await self._app(scope, receive, send)
            return
        # The current context read once, for the parent and for the context made current.
        current = context_api.get_current()
        span = self._start_span(scope, current)

        async def traced_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            await send(message)

        token = context_api.attach(trace.set_span_in_context(span, current))
        try:
            await self._app(scope, receive, traced_send)
        except Exception as error:
            # As the SDK's span context manager does.
            if span.is_recording():
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            raise
        finally:
            context_api.detach(token)
            span.end()


def _caller_context(scope: Scope) -> Context | None:
    """The caller's trace context if the request sends a `traceparent` header, else None."""
    for name, _ in scope["headers"]:
        if name == TRACEPARENT_HEADER:
            return TraceContextTextMapPropagator().extract(Headers(scope=scope))
    return None
