"""Which failures of the outside world are outages: waited out, never a reason to give up.

The one classification of errors from Postgres, Temporal and the broker. The worker's
command activities ask `is_outage` (retry until it ends, or give up after a few attempts);
the API asks `unavailable_service` (tell the client which part is down and to retry).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import psycopg
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from psycopg_pool import PoolTimeout as PsycopgPoolTimeout
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyPoolTimeout
from temporalio.service import RPCError, RPCStatusCode

POSTGRES = "postgres"
TEMPORAL = "temporal"
KAFKA = "kafka"
SUMMARY_LENGTH = 200

# The server cannot be reached or will not serve now: connection exceptions (class 08), too
# many connections, and a server shutting down, crashed or still starting.
_POSTGRES_DOWN_CLASSES = ("08",)
_POSTGRES_DOWN_STATES = frozenset({"53300", "57P01", "57P02", "57P03"})
# Not a component down, but passing all the same: other resource shortages (53), operator
# intervention (57), system errors (58), serialization failures, deadlocks, lock timeouts.
_PASSING_CLASSES = ("53", "57", "58")
_PASSING_STATES = frozenset({"40001", "40P01", "55P03"})
_TEMPORAL_DOWN_STATUSES = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        # A call cut off mid-way by a lost connection (the API never cancels a call it awaits).
        RPCStatusCode.CANCELLED,
    }
)
# A connection refused, reset or closed mid-call reaches us as UNKNOWN "transport error".
_TEMPORAL_TRANSPORT_ERROR = "transport error"
# A Temporal server just restarted answers NOT_FOUND for its namespace until it has loaded its
# namespaces (also inside an update-with-start's MultiOperationExecutionFailure): the server
# is not ready yet, which a retry shortly after outlives. A namespace that is really missing
# is a deployment mistake `sagaline doctor` names.
_NAMESPACE_NOT_FOUND = b"NamespaceNotFoundFailure"


def unavailable_service(error: BaseException | None) -> str | None:
    """The component whose outage `error` comes from ("postgres", "temporal", "kafka"), or None."""
    for cause in causes(error):
        service = _service_down(cause)
        if service is not None:
            return service
    return None


def is_outage(error: BaseException) -> bool:
    """Whether `error` means a service is unreachable or overloaded, not that the work is bad.

    A constraint violation, a data error or a bug raised by our own code is not an outage: it
    would fail the same way however often it was tried.
    """
    return any(_service_down(cause) or _passing(cause) for cause in causes(error))


def summary(error: BaseException) -> str:
    """The error's type and the first line of its message, short enough for a log line."""
    lines = str(error).strip().splitlines()
    first = lines[0][:SUMMARY_LENGTH] if lines else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def causes(error: BaseException | None) -> Iterator[BaseException]:
    """The error, the driver error it wraps, what it was raised from or while handling, and
    any grouped errors."""
    pending = [error] if error is not None else []
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, DBAPIError) and current.orig is not None:
            pending.append(current.orig)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def _service_down(error: BaseException) -> str | None:
    if isinstance(error, psycopg.OperationalError):
        # No SQLSTATE: the client library failed to connect or lost the connection.
        state = error.sqlstate
        if state is None or state.startswith(_POSTGRES_DOWN_CLASSES):
            return POSTGRES
        return POSTGRES if state in _POSTGRES_DOWN_STATES else None
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return POSTGRES
    if isinstance(error, SQLAlchemyPoolTimeout | PsycopgPoolTimeout):
        return POSTGRES  # no pooled connection came free: the database is not answering
    if isinstance(error, RPCError):
        if error.status in _TEMPORAL_DOWN_STATUSES:
            return TEMPORAL
        if (
            error.status == RPCStatusCode.NOT_FOUND
            and _NAMESPACE_NOT_FOUND in error.raw_grpc_status
        ):
            return TEMPORAL
        transport = error.status == RPCStatusCode.UNKNOWN
        return TEMPORAL if transport and error.message == _TEMPORAL_TRANSPORT_ERROR else None
    if isinstance(error, KafkaConnectionError | KafkaTimeoutError):
        return KAFKA
    return None


def _passing(error: BaseException) -> bool:
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):
        return True
    if isinstance(error, psycopg.Error):
        state = error.sqlstate
        return state is not None and (
            state.startswith(_PASSING_CLASSES) or state in _PASSING_STATES
        )
    if isinstance(error, DBAPIError) and error.orig is None:
        # A driver's connection-level failure carries no driver error to ask.
        return isinstance(error, OperationalError | InterfaceError)
    return isinstance(error, KafkaError) and error.retriable
