"""Outages: a client is told which component is down and to retry, not "internal error".

Which component an exception says is unreachable is decided by `adapters.outages`; the error
masking, the HTTP edge and the event feed all ask its `unavailable_service`. The API does not
talk to the broker: a Kafka outage only delays the relay and the read models.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from graphql import GraphQLError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.outages import summary, unavailable_service

log = logging.getLogger(__name__)

SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
RETRY_AFTER_SECONDS = 2
"""What the answer suggests a client waits before retrying (the Retry-After header)."""
REPORT_EVERY_SECONDS = 10.0


class OutageLog:
    """One WARNING line per component at most every `every` seconds, without a traceback."""

    def __init__(
        self, every: float = REPORT_EVERY_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._every = every
        self._clock = clock
        self._last: dict[str, float] = {}
        self._since: dict[str, int] = {}

    def report(self, service: str, error: BaseException | None, doing: str) -> None:
        """Note that `doing` failed because `service` is down; log it unless logged lately."""
        now = self._clock()
        last = self._last.get(service)
        if last is not None and now - last < self._every:
            self._since[service] = self._since.get(service, 0) + 1
            return
        more = self._since.pop(service, 0)
        self._last[service] = now
        also = f" ({more} more since the last report)" if more else ""
        log.warning(
            "%s is unavailable: %s failed%s: %s",
            service,
            doing,
            also,
            "no detail" if error is None else summary(error),
        )


outage_log = OutageLog()


def service_unavailable(error: GraphQLError, service: str) -> GraphQLError:
    """The field error a client gets instead of INTERNAL_SERVER_ERROR while `service` is down."""
    field = ".".join(map(str, error.path or ()))
    outage_log.report(service, error.original_error, f"field {field}")
    return GraphQLError(
        message=_message(service),
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=_extensions(service),
    )


def _message(service: str) -> str:
    return (
        f"{service} is unavailable; retry shortly (a mutation retried with the same "
        "commandId or transferId is not run twice)"
    )


def _extensions(service: str) -> dict[str, Any]:
    return {"code": SERVICE_UNAVAILABLE, "service": service, "retryAfter": RETRY_AFTER_SECONDS}


def nothing_ran(response: Any) -> bool:
    """Whether an outage stopped every field of an operation: only outage errors, no data."""
    if not isinstance(response, dict):
        return False
    errors = response.get("errors") or []
    data = response.get("data")
    no_data = data is None or (isinstance(data, dict) and all(v is None for v in data.values()))
    return (
        no_data
        and bool(errors)
        and all(
            isinstance(e, dict) and (e.get("extensions") or {}).get("code") == SERVICE_UNAVAILABLE
            for e in errors
        )
    )


def retry_after_headers() -> dict[str, str]:
    """The headers of a 503 answer."""
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


class AnswerOutages:
    """Answers 503 with Retry-After when an outage escapes before any response was sent.

    Field errors are handled by the error masking; this catches what fails around the
    GraphQL execution (a caller lookup, the context).
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, receive, tracking_send)
        except Exception as error:
            service = unavailable_service(error)
            if service is None or started:
                raise
            outage_log.report(service, error, f"{scope['method']} {scope['path']}")
            body = {"errors": [{"message": _message(service), "extensions": _extensions(service)}]}
            answer = JSONResponse(body, status_code=503, headers=retry_after_headers())
            await answer(scope, receive, send)
