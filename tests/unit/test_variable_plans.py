"""An operation's variables coerced by its document's plan give graphql-core's answers, on the
first request and on its repeats: values, the refusals of a missing, null or mistyped value,
and documents the plan leaves to graphql-core (fragments, defaults, other types, several
operations); no plan is kept of a document too long to be kept parsed."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry
from graphql import ExecutionResult, parse
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from api.leaf_fields import executor_for
from api.safety import MAX_CACHED_QUERY_CHARS
from tests.executing import executed


@strawberry.input
class Filter:
    name: str


@strawberry.type
class Query:
    @strawberry.field
    def echo(
        self,
        id: strawberry.ID,
        text: str | None = None,
        flag: bool | None = None,
        times: int | None = None,
        filter: Filter | None = None,
    ) -> str:
        return f"{id!r} {text!r} {flag!r} {times!r} {filter!r}"


SCHEMA = strawberry.Schema(query=Query)
OPERATION = (
    "query Q($id: ID!, $text: String, $flag: Boolean) { echo(id: $id, text: $text, flag: $flag) }"
)
CASES: list[tuple[str, dict[str, Any], str | None]] = [
    (OPERATION, {"id": "a", "text": "t", "flag": True}, None),
    (OPERATION, {"id": "a", "text": "t", "flag": True, "unused": 1}, None),
    (OPERATION, {"id": 7, "text": "t", "flag": False}, None),
    (OPERATION, {"id": "a"}, None),
    (OPERATION, {"id": "a", "text": None, "flag": None}, None),
    (OPERATION, {"text": "t", "flag": True}, None),
    (OPERATION, {"id": None, "text": "t", "flag": True}, None),
    (OPERATION, {"id": True, "text": "t", "flag": True}, None),
    (OPERATION, {"id": "a", "text": 5, "flag": True}, None),
    (OPERATION, {"id": "a", "text": "t", "flag": "yes"}, None),
    (OPERATION, {"id": "a", "text": "t", "flag": True}, "Q"),
    (OPERATION, {"id": "a", "text": "t", "flag": True}, "Other"),
    ('query Q($text: String = "d") { echo(id: "a", text: $text) }', {}, None),
    ("query Q($times: Int) { echo(id: 1, times: $times) }", {"times": 3}, None),
    ("query Q($f: Filter) { echo(id: 1, filter: $f) }", {"f": {"name": "n"}}, None),
    ("query Q($id: ID!) { ...E } fragment E on Query { echo(id: $id) }", {"id": "a"}, None),
    ("query A { echo(id: 1) } query B { echo(id: 2) }", {}, "B"),
    ("query A { echo(id: 1) } query B { echo(id: 2) }", {}, None),
]


async def answer(
    executor: type[Any], query: Any, variables: dict[str, Any], name: str | None
) -> ExecutionResult:
    return await executed(
        SCHEMA._schema, query, executor, variable_values=variables, operation_name=name
    )


@pytest.mark.parametrize(("query", "variables", "name"), CASES)
async def test_answers_are_graphql_core_s(
    query: str, variables: dict[str, Any], name: str | None
) -> None:
    document = parse(query)
    expected = await answer(StrawberryGraphQLCoreExecutionContext, document, variables, name)
    planned = executor_for(SCHEMA._schema, SCHEMA.config)
    for _ in range(2):  # the first builds the plan, the second uses it
        got = await answer(planned, document, variables, name)
        assert got.data == expected.data
        assert [e.formatted for e in got.errors or []] == [
            e.formatted for e in expected.errors or []
        ]


async def test_a_plain_operation_is_planned_and_others_are_not() -> None:
    planned = executor_for(SCHEMA._schema, SCHEMA.config)
    plain = parse(OPERATION)
    await answer(planned, plain, {"id": "a"}, None)
    fragment = parse(CASES[-3][0])
    await answer(planned, fragment, {"id": "a"}, None)
    plans = planned.variable_plans
    assert plans[(id(plain), None)] is not None
    assert plans[(id(fragment), None)] is None


async def test_a_document_too_long_to_be_kept_parsed_keeps_no_plan() -> None:
    # Such a text is parsed anew for each request (api/safety.py), so a plan of it would
    # never be used again: it would only keep the text alive, a body's worth per plan.
    planned = executor_for(SCHEMA._schema, SCHEMA.config)
    padded = parse(OPERATION + " " * MAX_CACHED_QUERY_CHARS)
    expected = await answer(StrawberryGraphQLCoreExecutionContext, padded, {"id": "a"}, None)
    got = await answer(planned, padded, {"id": "a"}, None)
    assert got.data == expected.data
    assert planned.variable_plans == {}
    kept = parse(OPERATION + " " * (MAX_CACHED_QUERY_CHARS - len(OPERATION)))
    await answer(planned, kept, {"id": "a"}, None)
    assert planned.variable_plans[(id(kept), None)] is not None
