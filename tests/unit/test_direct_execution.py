"""`SagalineSchema.execute` answers, logs and counts every operation as strawberry's execution
with the same extensions does: limits, validation, masking, outages, metrics, refusals."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import strawberry
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

import api.outages
from adapters.metrics import new_registry
from api.auth import Caller, Role
from api.error_log import LoggedSchema
from api.errors import BadPosition
from api.execution import SagalineSchema
from api.metrics import GraphQLMetrics, metrics_extensions
from api.outages import OutageLog
from api.safety import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS, CheckedDocuments, safety_extensions

MAX_COST = 40
CORRELATION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@strawberry.type
class Node:
    name: str = "n"

    @strawberry.field
    def child(self) -> Node:
        return Node()


@strawberry.type
class Query:
    @strawberry.field
    def echo(self, text: str) -> str:
        return text

    @strawberry.field
    async def node(self) -> Node:
        return Node()

    @strawberry.field
    def at_position(self) -> str:
        raise BadPosition("not-a-position")

    @strawberry.field
    async def has_a_bug(self) -> str | None:
        raise ZeroDivisionError("division by zero")

    @strawberry.field
    def reads_the_database(self) -> str | None:
        raise psycopg.OperationalError("connection failed: Connection refused")


@strawberry.type
class Mutation:
    @strawberry.mutation
    def touch(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def own_outage_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh outage log, so that these tests' reports do not silence other tests' ones."""
    monkeypatch.setattr(api.outages, "outage_log", OutageLog())


def nested(depth: int) -> str:
    return "{ node " + "{ child " * (depth - 1) + "{ name }" + " }" * (depth - 1) + " }"


DOCUMENTS = {
    "ok": ("query Q($t: String!) { echo(text: $t) node { child { name } } }", {"t": "hi"}),
    "syntax error": ("{ echo(text: ", None),
    "too many tokens": ("{ " + 'echo(text: "x") ' * (MAX_TOKENS // 4) + "}", None),
    "too deep": (nested(MAX_DEPTH + 1), None),
    "too many aliases": (
        "{" + "".join(f' a{i}: echo(text: "x")' for i in range(MAX_ALIASES + 1)) + "}",
        None,
    ),
    "too costly": ("{" + " node { name }" * MAX_COST + "}", None),
    "unknown field": ("{ noSuchField }", None),
    "missing argument": ("{ echo }", None),
    "bad variable": ("query Q($t: String!) { echo(text: $t) }", {"t": 5}),
    "typed refusal": ("{ atPosition }", None),
    "a bug": ('{ hasABug echo(text: "still") }', None),
    "an outage": ("{ readsTheDatabase }", None),
    "mutation": ("mutation { touch }", None),
    "named of two": ('query A { echo(text: "a") } query B { node { name } }', None),
}


def schemas() -> tuple[strawberry.Schema, SagalineSchema, CollectorPair]:
    """Strawberry's execution with the extensions, and the direct one, each with metrics."""
    registries = CollectorPair()
    through_extensions = LoggedSchema(
        query=Query,
        mutation=Mutation,
        extensions=[
            *metrics_extensions(registries.metrics[0]),
            *safety_extensions(checked=CheckedDocuments(MAX_COST)),
        ],
    )
    direct = SagalineSchema(
        checked=CheckedDocuments(MAX_COST),
        metrics=registries.metrics[1],
        query=Query,
        mutation=Mutation,
    )
    return through_extensions, direct, registries


class CollectorPair:
    def __init__(self) -> None:
        self.registries = (new_registry(), new_registry())
        self.metrics = tuple(GraphQLMetrics(r) for r in self.registries)

    def counts(self, index: int) -> dict[tuple[Any, ...], float]:
        found: dict[tuple[Any, ...], float] = {}
        for family in self.registries[index].collect():
            if family.name.startswith("sagaline_graphql_"):
                for sample in family.samples:
                    if sample.name.endswith(("_sum", "_bucket", "_created")):
                        continue  # durations and creation times differ between runs
                    found[(sample.name, *sorted(sample.labels.items()))] = sample.value
        return found


def answer(result: strawberry.types.ExecutionResult) -> dict[str, Any]:
    """The result as the client gets it, correlation ids replaced by a placeholder."""
    errors = [e.formatted for e in result.errors or []]
    text = CORRELATION_ID.sub("<id>", repr(errors))
    return {"data": result.data, "errors": text, "extensions": result.extensions or {}}


def log_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, str, bool]]:
    """The log records, without the outage log's (it reports once per interval, whoever asks)."""
    return [
        (r.name, r.levelno, CORRELATION_ID.sub("<id>", r.getMessage()), r.exc_info is not None)
        for r in caplog.records
        if not r.name.startswith("api.outages")
    ]


@pytest.mark.parametrize("case", sorted(DOCUMENTS))
@pytest.mark.parametrize("attempt", [1, 2])
async def test_each_operation_is_answered_logged_and_counted_as_through_the_extensions(
    case: str, attempt: int, caplog: pytest.LogCaptureFixture
) -> None:
    through_extensions, direct, registries = schemas()
    query, variables = DOCUMENTS[case]
    results = []
    logs = []
    for schema in (through_extensions, direct):
        for _ in range(attempt):  # the second attempt answers from the cached checks
            caplog.clear()
            with caplog.at_level(logging.DEBUG):
                result = await schema.execute(query, variables)
        results.append(result)
        logs.append(log_lines(caplog))
    assert answer(results[1]) == answer(results[0])
    assert type(results[1]) is type(results[0])
    assert logs[1] == logs[0]
    assert registries.counts(1) == registries.counts(0)
    assert registries.counts(1)  # the operation was counted


async def test_limits_masking_and_outages_hold_on_the_direct_path() -> None:
    _, direct, _ = schemas()
    assert direct.runs_directly()
    deep = await direct.execute(nested(MAX_DEPTH + 1))
    assert deep.data is None
    assert deep.errors
    assert "exceeds maximum operation depth" in deep.errors[0].message
    costly = await direct.execute(DOCUMENTS["too costly"][0])
    assert costly.errors
    assert costly.errors[0].extensions == {"code": "QUERY_TOO_COSTLY"}
    bug = await direct.execute(DOCUMENTS["a bug"][0])
    assert bug.data == {"hasABug": None, "echo": "still"}
    assert bug.errors
    (masked,) = bug.errors
    assert masked.extensions is not None
    assert masked.extensions["code"] == "INTERNAL_SERVER_ERROR"
    correlation_id = masked.extensions["correlationId"]
    assert masked.message == f"Unexpected error (correlation id {correlation_id})."
    assert "division" not in repr(masked.formatted)
    outage = await direct.execute(DOCUMENTS["an outage"][0])
    assert outage.errors
    assert outage.errors[0].extensions == {
        "code": "SERVICE_UNAVAILABLE",
        "service": "postgres",
        "retryAfter": 2,
    }


async def test_refusals_before_execution_raise_as_strawberry_raises_them() -> None:
    through_extensions, direct, _ = schemas()
    for schema in (through_extensions, direct):
        with pytest.raises(MissingQueryError):
            await schema.execute("")
        with pytest.raises(CannotGetOperationTypeError):
            await schema.execute('query A { echo(text: "a") }', operation_name="B")
        with pytest.raises(InvalidOperationTypeError):
            await schema.execute(
                "mutation { touch }", allowed_operation_types={OperationType.QUERY}
            )


async def test_a_named_operation_runs_that_operation() -> None:
    _, direct, _ = schemas()
    result = await direct.execute(DOCUMENTS["named of two"][0], operation_name="B")
    assert result.errors is None
    assert result.data == {"node": {"name": "n"}}


async def test_an_extension_added_later_takes_strawberry_s_path() -> None:
    _, direct, _ = schemas()
    seen: list[str] = []

    class Watch(strawberry.extensions.SchemaExtension):
        def on_operation(self):  # type: ignore[no-untyped-def]
            seen.append("operation")
            yield

    direct.extensions = (*direct.extensions, Watch)
    assert not direct.runs_directly()
    result = await direct.execute('{ echo(text: "x") }')
    assert result.data == {"echo": "x"}
    assert seen == ["operation"]


@dataclass(frozen=True)
class CallerOnly:
    """A context naming only its caller (what the schema's checks read of it)."""

    caller: Caller


CUSTOMER = CallerOnly(Caller(Role.CUSTOMER, "customer:u", "u"))
CLIENT = CallerOnly(Caller(Role.CLIENT, "client:c"))
INTROSPECTION = "{ __schema { queryType { name } } }"
TYPO = '{ ech(text: "x") }'


@pytest.mark.parametrize("path", ["through extensions", "direct"])
async def test_a_customer_is_refused_introspection_and_told_no_field_names(path: str) -> None:
    through_extensions, direct, _ = schemas()
    schema = direct if path == "direct" else through_extensions
    for _ in range(2):  # the second answer comes from the cached checks
        refused = await schema.execute(INTROSPECTION, context_value=CUSTOMER)
        assert refused.data is None and refused.errors
        assert "introspection has been disabled" in refused.errors[0].message
        typo = await schema.execute(TYPO, context_value=CUSTOMER)
        assert [e.message for e in typo.errors or []] == [
            "Cannot query field 'ech' on type 'Query'."
        ]
        named = await schema.execute("{ __typename }", context_value=CUSTOMER)
        assert named.data == {"__typename": "Query"}
    # An API token's caller (an operator's GraphiQL, a client back end) keeps both, and the
    # customer's answers did not change the checks cached for everyone.
    for context in (CLIENT, None):
        described = await schema.execute(INTROSPECTION, context_value=context)
        assert described.errors is None
        assert described.data == {"__schema": {"queryType": {"name": "Query"}}}
        hinted = await schema.execute(TYPO, context_value=context)
        assert [e.message for e in hinted.errors or []] == [
            "Cannot query field 'ech' on type 'Query'. Did you mean 'echo'?"
        ]


async def test_two_operations_without_an_operation_name_are_a_request_error() -> None:
    # Running the first would guess which one the client meant (GraphQL over HTTP: the
    # request is in error). Both paths refuse it before execution.
    through_extensions, direct, _ = schemas()
    for schema in (through_extensions, direct):
        result = await schema.execute(DOCUMENTS["named of two"][0])
        assert result.data is None
        assert [e.message for e in result.errors or []] == [
            "Must provide operation name if query contains multiple operations."
        ]
        assert result.errors and result.errors[0].path is None
        one = await schema.execute('query A { echo(text: "a") }')
        assert one.data == {"echo": "a"}
