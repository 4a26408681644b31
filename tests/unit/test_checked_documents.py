"""Each query text is parsed and checked once; the limits hold on the first request and on
every repeat of it."""

from __future__ import annotations

import pytest
import strawberry

from api.safety import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS, CheckedDocuments, safety_extensions


@strawberry.type
class Node:
    name: str = "n"

    @strawberry.field
    def child(self) -> Node:
        return Node()


@strawberry.type
class Query:
    @strawberry.field
    def node(self) -> Node:
        return Node()


def schema_and_cache(max_cost: int = 300) -> tuple[strawberry.Schema, CheckedDocuments]:
    extensions = safety_extensions(max_cost)
    schema = strawberry.Schema(query=Query, extensions=extensions)
    checks = extensions[0]()
    checked = getattr(checks, "checked", None)
    assert isinstance(checked, CheckedDocuments)
    return schema, checked


def nested(depth: int) -> str:
    return "{ node " + "{ child " * (depth - 1) + "{ name }" + " }" * (depth - 1) + " }"


def messages(result: strawberry.types.ExecutionResult) -> list[str]:
    return [e.message for e in result.errors or []]


@pytest.mark.parametrize("attempt", [1, 2])
async def test_the_limits_hold_on_a_first_request_and_on_its_repeats(attempt: int) -> None:
    schema, _ = schema_and_cache(max_cost=50)
    cases = {
        nested(MAX_DEPTH + 1): "exceeds maximum operation depth",
        "{" + "".join(f" a{i}: node {{ name }}" for i in range(MAX_ALIASES + 1)) + "}": "aliases",
        "{" + " node { name }" * 30 + "}": "over the limit of 50",
        "{ node { " + "name " * MAX_TOKENS + "} }": "tokens",
        "{ node { nope } }": "Cannot query field 'nope'",
        "{ node { name ": "Syntax Error",
    }
    for _ in range(attempt):
        for query, expected in cases.items():
            result = await schema.execute(query)
            assert result.data is None, query
            assert any(expected in m for m in messages(result)), (query, messages(result))
    ok = await schema.execute(nested(MAX_DEPTH))
    assert ok.errors is None


async def test_a_repeated_query_is_parsed_and_validated_once() -> None:
    schema, checked = schema_and_cache()
    query = "{ node { name child { name } } }"
    for _ in range(5):
        result = await schema.execute(query)
        assert result.errors is None
        assert result.data == {"node": {"name": "n", "child": {"name": "n"}}}
    # One call missed each cache; the other four were answered from it.
    assert checked._parsed.cache_info().misses == 1
    assert checked._checked.cache_info().misses == 1
    assert checked._checked.cache_info().hits == 4


async def test_cached_errors_reach_each_request_as_its_own_list() -> None:
    schema, _ = schema_and_cache()
    first = await schema.execute("{ node { nope } }")
    second = await schema.execute("{ node { nope } }")
    assert first.errors is not None and second.errors is not None
    assert first.errors is not second.errors
    assert messages(first) == messages(second)
