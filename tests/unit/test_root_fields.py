"""Plain root fields called in one step give the answers of strawberry's resolver chain: values,
nulls, the input boundary's refusals, a resolver's errors (messages, paths, locations,
extensions), an error in a non-null field nulling the whole answer (a refusal of its arguments
included, the fields beside it still run and reported), and the same `Info`."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry
from graphql import ExecutionResult, parse
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from api.inputs import guard
from api.leaf_fields import executor_for
from domain.errors import InvalidInput
from tests.executing import executed


@strawberry.type
class Thing:
    name: str
    note: str | None = None


@strawberry.input
class Wanted:
    name: str


@strawberry.type
class Query:
    @strawberry.field
    async def thing(
        self, info: strawberry.Info, id: strawberry.ID, note: str | None = None
    ) -> Thing | None:
        if id == "missing":
            return None
        if id == "fails":
            raise RuntimeError("the read failed")
        if id == "refused":
            raise InvalidInput("id", "is not one the resolver takes")
        if id == "nameless":
            return Thing(name=None)  # type: ignore[arg-type]
        seen = f"{info.field_name} at {info.path.key} for {info.context}"
        return Thing(name=f"{id}: {seen}", note=note)

    @strawberry.field
    async def must(self, id: strawberry.ID) -> Thing:
        if id == "fails":
            raise RuntimeError("the read failed")
        return Thing(name=id)

    @strawberry.field
    async def count(self, times: int, flag: bool = False) -> list[int]:
        return [times] * (2 if flag else 1)

    @strawberry.field
    async def root(self) -> str:
        return f"self is {self}"

    @strawberry.field
    async def wanted(self, wanted: Wanted) -> Thing:
        return Thing(name=wanted.name)

    @strawberry.field
    def plain(self, id: strawberry.ID) -> Thing:
        return Thing(name=id)


guard([Query])
SCHEMA = strawberry.Schema(query=Query)
QUERIES = [
    '{ thing(id: "a1") { name note } }',
    '{ thing(id: "a1", note: "a note") { name note __typename } }',
    '{ thing(id: "missing") { name } }',
    '{ thing(id: "fails") { name } }',
    '{ thing(id: "refused") { name } }',
    '{ thing(id: "nameless") { name } }',
    '{ thing(id: "bad\\u0000id") { name } }',
    '{ thing(id: "a1", note: "bad\\u0007note") { name } }',
    "{ thing(id: 42) { name } }",
    '{ one: thing(id: "a1") { name } two: thing(id: "fails") { name } }',
    '{ must(id: "b2") { name } }',
    '{ must(id: "fails") { name } thing(id: "a1") { name } }',
    '{ must(id: "bad\\u0000id") { name } thing(id: "fails") { name } }',
    '{ must(id: "bad\\u0000id") { name } thing(id: "refused") { name } }',
    '{ thing(id: "fails") { name } must(id: "bad\\u0000id") { name } }',
    "{ count(times: 3) }",
    "{ count(times: 3, flag: true) }",
    "{ root }",
    '{ wanted(wanted: { name: "w" }) { name } }',
    '{ plain(id: "p") { name } }',
    "query Q($id: ID!, $note: String) { thing(id: $id, note: $note) { name note } }",
]
VARIABLES = {"id": "v3", "note": "from a variable"}


async def answer(executor: type[Any], query: str) -> ExecutionResult:
    return await executed(
        SCHEMA._schema,
        parse(query),
        executor,
        root_value="the root",
        context_value="the context",
        variable_values=VARIABLES,
    )


def test_only_plain_root_fields_qualify() -> None:
    # `wanted` takes an input type, `plain` is synchronous.
    roots = executor_for(SCHEMA._schema, SCHEMA.config).root_fields
    assert set(roots) == {"Query"}
    assert set(roots["Query"]) == {"thing", "must", "count", "root"}


@pytest.mark.parametrize("query", QUERIES)
async def test_answers_are_strawberry_s(query: str) -> None:
    expected = await answer(StrawberryGraphQLCoreExecutionContext, query)
    got = await answer(executor_for(SCHEMA._schema, SCHEMA.config), query)
    assert got.data == expected.data
    assert [e.formatted for e in got.errors or []] == [e.formatted for e in expected.errors or []]


async def test_refusals_and_failures_are_reported() -> None:
    fast = executor_for(SCHEMA._schema, SCHEMA.config)
    refused = await answer(fast, '{ thing(id: "refused") { name } }')
    assert refused.data == {"thing": None}
    assert [e.extensions for e in refused.errors or []] == [
        {"code": "BAD_USER_INPUT", "field": "id"}
    ]
    failed = await answer(fast, '{ must(id: "fails") { name } thing(id: "a1") { name } }')
    assert failed.data is None
    assert [(e.message, e.path) for e in failed.errors or []] == [("the read failed", ["must"])]
    seen = await answer(fast, '{ thing(id: "a1") { name } root }')
    assert seen.data == {
        "thing": {"name": "a1: thing at thing for the context"},
        "root": "self is the root",
    }
