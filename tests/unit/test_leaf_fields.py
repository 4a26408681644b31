"""Plain leaf fields answered in one step give graphql-core's answers: values, nulls, and the
errors (messages, paths, locations) of a null in a non-null field, a value the scalar refuses,
an attribute that raises, an awaitable attribute."""

from __future__ import annotations

import enum
import gc
import weakref
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import strawberry
from graphql import ExecutionResult, parse
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from api.inputs import DECIMAL_SCALAR
from api.leaf_fields import LeafFieldsExecutor, executor_for, plain_leaf_fields
from tests.executing import executed


@strawberry.enum
class Colour(enum.Enum):
    RED = "RED"


class Raises:
    """An attribute whose read fails."""

    def __get__(self, instance: object, owner: type) -> str:
        if instance is None:
            return "default"
        raise RuntimeError("attribute failed")

    def __set__(self, instance: object, value: object) -> None:
        pass


class Awaits(Raises):
    """An attribute whose read is an awaitable."""

    def __get__(self, instance: object, owner: type) -> Any:
        return None if instance is None else later()


async def later() -> str:
    return "later"


@strawberry.type
class Item:
    name: str
    amount: Decimal
    colour: Colour
    at: datetime
    count: int
    maybe: str | None = None

    @strawberry.field
    def resolved(self) -> str:
        return f"resolved {self.name}"


@strawberry.type
class Query:
    @strawberry.field
    def item(self) -> Item:
        return Item(name="a", amount=Decimal("1.50"), colour=Colour.RED, at=AT, count=3)

    @strawberry.field
    def items(self) -> list[Item | None]:
        good = Item(name="b", amount=Decimal("2.00"), colour=Colour.RED, at=AT, count=1)
        null_name = Item(name="c", amount=Decimal(0), colour=Colour.RED, at=AT, count=1)
        null_name.name = None  # type: ignore[assignment]
        bad_count = Item(name="d", amount=Decimal(0), colour=Colour.RED, at=AT, count=1)
        bad_count.count = "not a number"  # type: ignore[assignment]
        bad_colour = Item(name="e", amount=Decimal(0), colour=Colour.RED, at=AT, count=1)
        bad_colour.colour = "BLUE"  # type: ignore[assignment]
        raising = Item(name="f", amount=Decimal(0), colour=Colour.RED, at=AT, count=1)
        raising.__class__ = RaisingItem
        awaiting = Item(name="g", amount=Decimal(0), colour=Colour.RED, at=AT, count=1)
        awaiting.__class__ = AwaitingItem
        return [good, null_name, bad_count, bad_colour, raising, awaiting]

    @strawberry.field
    async def gathered(self, info: strawberry.Info) -> list[str]:
        return list(await info._raw_info.async_helpers.gather([later(), later()]))


class RaisingItem(Item):
    maybe = Raises()  # type: ignore[assignment]


class AwaitingItem(Item):
    maybe = Awaits()  # type: ignore[assignment]


AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SCHEMA = strawberry.Schema(query=Query, scalar_overrides={Decimal: DECIMAL_SCALAR})
QUERIES = [
    "{ item { name amount colour at count maybe resolved __typename } }",
    "{ items { name count } }",
    "{ items { colour } }",
    "{ items { maybe } }",
    "{ items { renamed: name other: name maybe } }",
    "query Q($skip: Boolean!) { item { name @skip(if: $skip) count } }",
    "{ gathered }",
]


async def answer(executor: type[Any], query: str, context: object = None) -> ExecutionResult:
    return await executed(
        SCHEMA._schema,
        parse(query),
        executor,
        variable_values={"skip": True},
        context_value=context,
    )


def test_only_plain_leaves_qualify() -> None:
    leaves = plain_leaf_fields(SCHEMA._schema)
    assert set(leaves["Item"]) == {"name", "amount", "colour", "at", "count", "maybe"}
    assert "Query" not in leaves


@pytest.mark.parametrize("query", QUERIES)
async def test_answers_are_graphql_core_s(query: str) -> None:
    fast = executor_for(SCHEMA._schema, SCHEMA.config)
    assert issubclass(fast, LeafFieldsExecutor)
    expected = await answer(StrawberryGraphQLCoreExecutionContext, query)
    got = await answer(fast, query)
    assert got.data == expected.data
    assert [e.formatted for e in got.errors or []] == [e.formatted for e in expected.errors or []]


async def test_the_refusals_are_reported() -> None:
    result = await answer(
        executor_for(SCHEMA._schema, SCHEMA.config), "{ items { name count colour maybe } }"
    )
    messages = {tuple(e.path or ()): e.message for e in result.errors or []}
    assert messages[("items", 1, "name")] == "Cannot return null for non-nullable field Item.name."
    assert "Int cannot represent" in messages[("items", 2, "count")]
    assert "Enum 'Colour' cannot represent" in messages[("items", 3, "colour")]
    assert messages[("items", 4, "maybe")] == "attribute failed"
    assert result.data is not None
    assert result.data["items"][0] == {"name": "b", "count": 1, "colour": "RED", "maybe": None}
    assert result.data["items"][5]["maybe"] == "later"


class Context:
    """An operation's context, to see when it is freed."""


async def freed_without_the_collector(executor: type[Any]) -> bool:
    context = Context()
    freed = weakref.ref(context)
    gc.disable()
    try:
        result = await answer(executor, "{ gathered item { name } }", context)
        assert result.errors is None
        del context, result
        return freed() is None
    finally:
        gc.enable()


async def test_an_operation_is_freed_as_it_ends() -> None:
    # The stock executor holds itself in a cycle (through its helpers), and the context too.
    assert not await freed_without_the_collector(StrawberryGraphQLCoreExecutionContext)
    assert await freed_without_the_collector(executor_for(SCHEMA._schema, SCHEMA.config))
