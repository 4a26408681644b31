"""Outages: a client is told which component is down and to retry, not "internal error".

Whether an exception means Postgres or Temporal cannot be reached is decided here and
nowhere else; the error masking, the HTTP edge and the event feed all ask `unavailable_service`.
The API does not talk to the broker: a Kafka outage only delays the relay and the read models.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from graphql import GraphQLError
from sqlalchemy import exc as sqlalchemy_errors
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.service import RPCError, RPCStatusCode

log = logging.getLogger(__name__)

POSTGRES = "postgres"
TEMPORAL = "temporal"
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
RETRY_AFTER_SECONDS = 2
"""What the answer suggests a client waits before retrying (the Retry-After header)."""
REPORT_EVERY_SECONDS = 10.0

# Connection exceptions (class 08), too many connections, and a server shutting down,
# crashed or still starting. Deadlocks, serialization failures or cancelled statements
# are OperationalErrors too, but they are not outages.
_POSTGRES_DOWN_CLASSES = ("08",)
_POSTGRES_DOWN_STATES = frozenset({"53300", "57P01", "57P02", "57P03"})
_TEMPORAL_DOWN_STATUSES = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}
)
# A connection refused, reset or closed mid-call reaches us from the client's transport as
# UNKNOWN "transport error", or as CANCELLED (the API never cancels a call it still awaits).
_TEMPORAL_TRANSPORT_ERROR = "transport error"


def unavailable_service(error: BaseException | None) -> str | None:
    """The component whose outage `error` comes from ("postgres", "temporal"), or None."""
    for cause in _causes(error):
        if isinstance(cause, psycopg.OperationalError) and _postgres_down(cause):
            return POSTGRES
        if isinstance(cause, sqlalchemy_errors.DBAPIError) and cause.connection_invalidated:
            return POSTGRES
        if isinstance(cause, sqlalchemy_errors.TimeoutError):
            return POSTGRES  # no pooled connection came free: the database is not answering
        if isinstance(cause, RPCError) and _temporal_down(cause):
            return TEMPORAL
    return None


def _postgres_down(error: psycopg.OperationalError) -> bool:
    # No SQLSTATE: the client library failed to connect or lost the connection.
    state = error.sqlstate
    if state is None:
        return True
    return state.startswith(_POSTGRES_DOWN_CLASSES) or state in _POSTGRES_DOWN_STATES


def _temporal_down(error: RPCError) -> bool:
    if error.status in _TEMPORAL_DOWN_STATUSES or error.status == RPCStatusCode.CANCELLED:
        return True
    return error.status == RPCStatusCode.UNKNOWN and error.message == _TEMPORAL_TRANSPORT_ERROR


def _causes(error: BaseException | None) -> Iterator[BaseException]:
    """The error, what it was raised from or while handling, and any grouped errors."""
    pending = [error] if error is not None else []
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, sqlalchemy_errors.DBAPIError) and current.orig is not None:
            pending.append(current.orig)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


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
        log.warning("%s is unavailable: %s failed%s: %s", service, doing, also, _summary(error))


def _summary(error: BaseException | None) -> str:
    if error is None:
        return "no detail"
    first_line = (str(error).strip().splitlines() or [""])[0][:200]
    return f"{type(error).__name__}: {first_line}"


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
