"""The API's span: one server span per GraphQL request over HTTP, the root of a mutation's
trace (or a child of the caller's, when it sends a `traceparent` header)."""

from __future__ import annotations

from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.tracing import tracer

GRAPHQL_PATH = "/graphql"


class TraceRequests:
    """Wraps every GraphQL POST in a span, its status code recorded.

    Added only when tracing is on. GET only serves GraphiQL (and `up`'s readiness probe);
    websockets (subscriptions live for long) are not traced.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != GRAPHQL_PATH:
            await self._app(scope, receive, send)
            return
        parent = TraceContextTextMapPropagator().extract(Headers(scope=scope))
        with tracer().start_as_current_span(
            f"POST {GRAPHQL_PATH}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": "POST", "url.path": GRAPHQL_PATH},
        ) as span:

            async def traced_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self._app(scope, receive, traced_send)
