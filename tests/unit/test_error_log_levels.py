"""A client's mistake is logged at INFO without a traceback; ERROR is for operators."""

from __future__ import annotations

import logging

import psycopg
import pytest
import strawberry

from api.error_log import LoggedSchema
from api.errors import BadPosition
from api.safety import safety_extensions
from api.schema import build_schema


@strawberry.type
class Query:
    @strawberry.field
    def echo(self, text: str) -> str:
        return text

    @strawberry.field
    def at_position(self) -> str:
        raise BadPosition("not-a-position")

    @strawberry.field
    def has_a_bug(self) -> str:
        raise ZeroDivisionError("division by zero")

    @strawberry.field
    def reads_the_database(self) -> str:
        raise psycopg.OperationalError("connection failed: Connection refused")


SCHEMA = LoggedSchema(query=Query, extensions=safety_extensions())


async def logged(caplog: pytest.LogCaptureFixture, query: str) -> list[logging.LogRecord]:
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        result = await SCHEMA.execute(query)
    assert result.errors
    return [r for r in caplog.records if not r.name.startswith("api.outages")]


async def test_a_missing_required_argument_is_logged_at_info_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    (record,) = await logged(caplog, "{ echo }")
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    assert "is required" in record.getMessage()


async def test_a_bad_consistent_with_is_logged_at_info_with_its_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    (record,) = await logged(caplog, "{ atPosition }")
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    assert "(BAD_USER_INPUT) at atPosition" in record.getMessage()


async def test_an_unparsable_document_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    (record,) = await logged(caplog, "{ echo(")
    assert record.levelno == logging.INFO
    assert record.exc_info is None


async def test_an_unexpected_error_is_logged_once_at_error_with_its_traceback_and_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        result = await SCHEMA.execute("{ hasABug }")
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
    assert result.errors is not None
    correlation_id = result.errors[0].extensions["correlationId"]
    assert correlation_id in record.getMessage()


async def test_an_outage_leaves_its_report_to_the_outage_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        await SCHEMA.execute("{ readsTheDatabase }")
    assert [(r.name, r.levelno) for r in caplog.records] == [("api.outages", logging.WARNING)]


async def test_the_api_schema_logs_bad_requests_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        result = await build_schema().execute("{ user { id } }")
    assert result.errors
    assert caplog.records
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in caplog.records)


PASSWORD = "hunter2-not-for-logs"
REGISTER = "mutation ($in: RegisterUserInput!) { registerUser(input: $in) { __typename } }"


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        # A required field missing, an unknown one, a leaf of the wrong type: graphql-core's
        # messages quote the value they were given, the password with it.
        (REGISTER, {"in": {"email": "ann@example.com", "password": PASSWORD}}),
        (REGISTER, {"in": {"email": "a@b.c", "name": "Ann", "password": PASSWORD, "pw": 1}}),
        (REGISTER, {"in": {"email": "a@b.c", "name": "Ann", "password": [PASSWORD]}}),
        (
            f'mutation {{ registerUser(input: {{email: "a@b.c", password: "{PASSWORD}"}})'
            " { __typename } }",
            None,
        ),
        (
            f'mutation {{ authenticate(input: {{email: "a@b.c", password: ["{PASSWORD}"]}})'
            " { __typename } }",
            None,
        ),
    ],
)
async def test_a_refused_input_is_logged_without_the_values_it_held(
    caplog: pytest.LogCaptureFixture, query: str, variables: dict[str, object] | None
) -> None:
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        result = await build_schema().execute(query, variables)
    assert result.errors
    assert caplog.records
    assert all(PASSWORD not in r.getMessage() for r in caplog.records), caplog.text
    assert all(
        "RegisterUserInput" in r.getMessage()
        or "String" in r.getMessage()
        or "AuthenticateInput" in r.getMessage()
        for r in caplog.records
    ), caplog.text


async def test_a_refusal_quoting_a_long_name_is_logged_cut_short(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The document's own text comes back in graphql-core's messages ("Cannot query field
    # 'aaaa...'"): a body of a megabyte must not make a log line of one.
    (record,) = await logged(caplog, "{ " + "a" * 100_000 + " }")
    assert record.levelno == logging.INFO
    assert len(record.getMessage()) < 1_000
    assert "Cannot query field" in record.getMessage()
