"""Which failures of the outside world are outages: waited out, never a reason to give up."""

from __future__ import annotations

import socket

from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# SQLSTATE classes and codes that say the server is (for now) unable to do the work, whatever
# the work is: connection exceptions, insufficient resources, operator intervention (shutdown,
# query cancelled), system errors; serialization failures, deadlocks and lock timeouts pass too.
_PASSING_CLASSES = ("08", "53", "57", "58")
_PASSING_CODES = frozenset({"40001", "40P01", "55P03"})


def is_outage(error: BaseException) -> bool:
    """Whether `error` means a service is unreachable or overloaded, not that the work is bad.

    A constraint violation, a data error or a bug raised by our own code is not an outage: it
    would fail the same way however often it was tried.
    """
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror | PoolTimeout):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        sqlstate = getattr(error.orig, "sqlstate", None)
        if sqlstate is None:
            # A driver's connection-level failure carries no SQLSTATE.
            return isinstance(error, OperationalError | InterfaceError)
        return sqlstate.startswith(_PASSING_CLASSES) or sqlstate in _PASSING_CODES
    if isinstance(error, KafkaError):
        return isinstance(error, KafkaConnectionError | KafkaTimeoutError) or error.retriable
    return error.__cause__ is not None and is_outage(error.__cause__)
