"""Which errors are outages, what a client sees for one, and how often the log says so."""

from __future__ import annotations

import logging

import psycopg
import pytest
import strawberry
from psycopg import errors as pg_errors
from sqlalchemy import exc as sqlalchemy_errors
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send
from temporalio.service import RPCError, RPCStatusCode

from adapters.outages import unavailable_service
from api.outages import AnswerOutages, OutageLog, nothing_ran
from api.safety import safety_extensions

# The status details a Temporal server just restarted gave an update-with-start (from a run
# of the chaos suite): NOT_FOUND for the namespace, inside a multi-operation failure.
UPDATE_WITH_START_NO_NAMESPACE = (
    b"\x08\x05\x12(Update-with-Start could not be executed.\x1a\xbb\x02\nOtype.googleapis.com/"
    b"temporal.api.errordetails.v1.MultiOperationExecutionFailure\x12\xe7\x01\n{\x08\x05\x12"
    b"\x1fNamespace default is not found.\x1aV\nItype.googleapis.com/temporal.api.errordetails"
    b".v1.NamespaceNotFoundFailure\x12\t\n\x07default\nh\x08\n\x12\x16Operation was aborted."
)


def raised_from(error: BaseException, cause: BaseException) -> BaseException:
    try:
        raise error from cause
    except BaseException as raised:
        return raised


@pytest.mark.parametrize(
    ("error", "service"),
    [
        (psycopg.OperationalError("connection failed: Connection refused"), "postgres"),
        (pg_errors.AdminShutdown("terminating connection"), "postgres"),
        (pg_errors.CannotConnectNow("the database system is starting up"), "postgres"),
        (pg_errors.TooManyConnections("too many clients"), "postgres"),
        (
            sqlalchemy_errors.OperationalError(
                "SELECT 1", {}, psycopg.OperationalError("server closed the connection")
            ),
            "postgres",
        ),
        (
            sqlalchemy_errors.DBAPIError(
                "SELECT 1", {}, Exception("lost"), connection_invalidated=True
            ),
            "postgres",
        ),
        (sqlalchemy_errors.TimeoutError("QueuePool limit reached"), "postgres"),
        (RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b""), "temporal"),
        (RPCError("transport error", RPCStatusCode.UNKNOWN, b""), "temporal"),
        (RPCError("operation was canceled", RPCStatusCode.CANCELLED, b""), "temporal"),
        (RPCError("start", RPCStatusCode.NOT_FOUND, UPDATE_WITH_START_NO_NAMESPACE), "temporal"),
        (raised_from(RuntimeError("read failed"), psycopg.OperationalError("lost")), "postgres"),
        (
            ExceptionGroup("both", [ValueError(), RPCError("x", RPCStatusCode.UNAVAILABLE, b"")]),
            "temporal",
        ),
    ],
)
def test_an_unreachable_component_is_named(error: BaseException, service: str) -> None:
    assert unavailable_service(error) == service


@pytest.mark.parametrize(
    "error",
    [
        pg_errors.DeadlockDetected("deadlock detected"),
        pg_errors.SerializationFailure("could not serialize"),
        pg_errors.QueryCanceled("statement timeout"),
        sqlalchemy_errors.ProgrammingError("SELECT x", {}, pg_errors.UndefinedColumn("x")),
        RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b""),
        RPCError("bad", RPCStatusCode.UNKNOWN, b""),
        ValueError("a bug"),
        None,
    ],
)
def test_other_errors_are_not_outages(error: BaseException | None) -> None:
    assert unavailable_service(error) is None


@strawberry.type
class Query:
    @strawberry.field
    def reads_the_database(self) -> str | None:
        raise psycopg.OperationalError("connection failed: Connection refused")

    @strawberry.field
    def has_a_bug(self) -> str | None:
        raise ValueError("a bug")

    @strawberry.field
    def answers(self) -> str:
        return "fine"


async def test_an_outage_answers_service_unavailable_and_a_bug_stays_masked() -> None:
    schema = strawberry.Schema(query=Query, extensions=safety_extensions())
    result = await schema.execute("{ readsTheDatabase hasABug answers }")
    assert result.data == {"readsTheDatabase": None, "hasABug": None, "answers": "fine"}
    assert result.errors is not None
    by_field = {str(e.path[0]) if e.path else "": e.extensions for e in result.errors}
    assert by_field["readsTheDatabase"] == {
        "code": "SERVICE_UNAVAILABLE",
        "service": "postgres",
        "retryAfter": 2,
    }
    assert by_field["hasABug"] is not None
    assert by_field["hasABug"]["code"] == "INTERNAL_SERVER_ERROR"


def outage(path: str = "account") -> dict[str, object]:
    return {"message": "down", "path": [path], "extensions": {"code": "SERVICE_UNAVAILABLE"}}


def test_only_an_operation_stopped_entirely_by_outages_is_answered_503() -> None:
    assert nothing_ran({"data": None, "errors": [outage()]})
    assert nothing_ran({"data": {"account": None, "user": None}, "errors": [outage(), outage()]})
    assert not nothing_ran({"data": {"account": None, "user": {"id": "u"}}, "errors": [outage()]})
    other = {"message": "bug", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
    assert not nothing_ran({"data": None, "errors": [outage(), other]})
    assert not nothing_ran({"data": {"account": None}})
    assert not nothing_ran([{"data": None, "errors": [outage()]}])


def test_the_outage_log_says_one_line_per_component_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    outages = OutageLog(every=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="api.outages"):
        for _ in range(5):
            outages.report("postgres", psycopg.OperationalError("refused"), "field account")
        outages.report("temporal", None, "field depositMoney")
        now[0] = 10.0
        outages.report("postgres", psycopg.OperationalError("refused"), "field account")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert lines[0].startswith("postgres is unavailable: field account failed: OperationalError")
    assert lines[1].startswith("temporal is unavailable")
    assert "(4 more since the last report)" in lines[2]
    assert all(r.exc_info is None for r in caplog.records)


def guarded(error: Exception) -> TestClient:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise error

    return TestClient(AnswerOutages(failing), raise_server_exceptions=True)


def test_an_outage_before_any_field_ran_answers_503_with_retry_after() -> None:
    response = guarded(psycopg.OperationalError("connection failed")).post("/graphql")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    [error] = response.json()["errors"]
    assert error["extensions"] == {
        "code": "SERVICE_UNAVAILABLE",
        "service": "postgres",
        "retryAfter": 2,
    }


def test_a_bug_before_any_field_ran_is_not_taken_for_an_outage() -> None:
    with pytest.raises(ValueError, match="a bug"):
        guarded(ValueError("a bug")).post("/graphql")
