"""GraphQL queries against real read models: `users { accounts }` costs a bounded number of
statements however many users are on the page (DataLoader batching), a user's `accounts`
list answers at most MAX_PAGE accounts (more is an error on that field alone), and
`account(id)` queries in flight together are read in one statement."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from temporalio.client import Client

from adapters.database import GroupedReads, ReadPool, create_engine
from adapters.event_store import PostgresEventStore
from api.auth import Caller, Role, TokenCheck
from api.context import Context, Services
from api.live import EventFeed
from api.pagination import MAX_PAGE, encode_cursor
from api.schema import build_schema
from domain.accounts import Account
from domain.repository import Repository
from domain.users import User
from projections.accounts import (
    AccountsProjection,
    AccountView,
    accounts,
    accounts_of_owners,
    read_accounts,
)
from projections.projector import Projector
from projections.users import UsersProjection
from runtime.config import Settings
from tests.projecting import project_through

QUERY = """
query($first: Int!) {
  users(first: $first) { edges { node { id accounts { id balance } } } }
}"""


async def test_users_with_their_accounts_take_the_same_statements_for_5_or_40_users(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    repository = Repository(store)
    for _ in range(40):
        user = User(f"user-{uuid.uuid4()}")
        user.register(f"{uuid.uuid4()}@example.com", "Q")
        await repository.save(user, lambda _: uuid.uuid4(), {})
        for _ in range(2):
            account = Account(f"account-{uuid.uuid4()}")
            account.open(user.id, "EUR", Decimal(100))
            account.deposit(Decimal(3))
            await repository.save(account, lambda _: uuid.uuid4(), {})
    position = await store.head_position()
    for projection in (UsersProjection(), AccountsProjection()):
        projector = Projector(engine, store, projection, batch_size=2_000)
        await project_through(engine, projector, position)

    schema = build_schema()
    # The queries' own engine: the statements counted are theirs, not those of anything else
    # using the session's shared engine meanwhile.
    counted = create_engine(database_url, pool_size=2)
    services = Services(
        settings=Settings(database_url=database_url),
        engine=counted,
        temporal=cast(Client, None),
        tokens=TokenCheck({}),
        feed=EventFeed(store, database_url),
        reads=ReadPool(database_url, 1),
        primary_reads=ReadPool(database_url, 1),
    )
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(counted.sync_engine, "before_cursor_execute", count)
    try:
        counts = {}
        for size in (5, 40):
            statements.clear()
            context = Context(
                services=services,
                request=Request({"type": "http", "method": "POST", "headers": []}),
                caller=Caller(Role.CLIENT, "test"),
            )
            result = await schema.execute(QUERY, {"first": size}, context_value=context)
            assert result.errors is None, result.errors
            edges = result.data["users"]["edges"]  # type: ignore[index]
            assert len(edges) == size
            counts[size] = len(statements)
    finally:
        event.remove(counted.sync_engine, "before_cursor_execute", count)
        await counted.dispose()
    assert counts[5] == counts[40] <= 2


def services_on(engine: AsyncEngine, store: PostgresEventStore, database_url: str) -> Services:
    return Services(
        settings=Settings(database_url=database_url),
        engine=engine,
        temporal=cast(Client, None),
        tokens=TokenCheck({}),
        feed=EventFeed(store, database_url),
        reads=ReadPool(database_url, 1),
        primary_reads=ReadPool(database_url, 1),
    )


def client_context(services: Services) -> Context:
    return Context(
        services=services,
        request=Request({"type": "http", "method": "POST", "headers": []}),
        caller=Caller(Role.CLIENT, "test"),
    )


async def registered_users(engine: AsyncEngine, store: PostgresEventStore, count: int) -> list[str]:
    """The ids of `count` new users, in the users read model."""
    repository = Repository(store)
    ids = []
    for _ in range(count):
        user = User(f"user-{uuid.uuid4()}")
        user.register(f"{uuid.uuid4()}@example.com", "Q")
        await repository.save(user, lambda _: uuid.uuid4(), {})
        ids.append(user.id)
    projector = Projector(engine, store, UsersProjection(), batch_size=2_000)
    await project_through(engine, projector, await store.head_position())
    return ids


async def give_accounts(engine: AsyncEngine, owner_id: str, count: int) -> list[str]:
    """`count` open accounts of the owner, written straight into the accounts read model
    (opening them one by one through commands would take far longer); their ids in id
    order."""
    now = datetime.now(UTC)
    rows = [
        {
            "id": f"account-{uuid.uuid4()}",
            "owner_id": owner_id,
            "balance": Decimal(0),
            "currency": "EUR",
            "status": "OPEN",
            "opened_at": now,
            "last_updated": now,
            "version": 1,
        }
        for _ in range(count)
    ]
    async with engine.begin() as conn:
        await conn.execute(accounts.insert(), rows)
    return sorted(row["id"] for row in rows)


ACCOUNTS_OF_TWO = """
query($full: ID!, $over: ID!) {
  full: user(id: $full) { id accounts { id } }
  over: user(id: $over) { id name accounts { id } }
}"""


async def test_a_user_over_the_accounts_bound_gets_an_error_on_that_list_alone(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    full, over = await registered_users(engine, store, 2)
    full_ids = await give_accounts(engine, full, MAX_PAGE)
    await give_accounts(engine, over, MAX_PAGE + 1)

    schema = build_schema()
    context = client_context(services_on(engine, store, database_url))
    result = await schema.execute(
        ACCOUNTS_OF_TWO, {"full": full, "over": over}, context_value=context
    )

    assert result.data is not None
    # Exactly the bound: every account, in id order.
    assert result.data["full"] == {"id": full, "accounts": [{"id": i} for i in full_ids]}
    # One more: the list is null with a typed error; the user's other fields still answer.
    assert result.data["over"] == {"id": over, "name": "Q", "accounts": None}
    assert result.errors is not None and len(result.errors) == 1
    error = result.errors[0]
    assert error.path == ["over", "accounts"]
    assert error.extensions == {"code": "TOO_MANY_ACCOUNTS", "limit": MAX_PAGE}
    assert "accounts(ownerId:, first:, after:)" in error.message


async def test_accounts_of_owners_loads_at_most_the_limit_per_owner_in_id_order(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    many, few, none = (f"user-{uuid.uuid4()}" for _ in range(3))
    many_ids = await give_accounts(engine, many, 7)
    few_ids = await give_accounts(engine, few, 2)
    async with engine.connect() as conn:
        found = await accounts_of_owners(conn, [many, few, none, many], 5)
    assert {owner: [v.id for v in views] for owner, views in found.items()} == {
        many: many_ids[:5],
        few: few_ids,
        none: [],
    }


USERS_FROM = """
query($after: String!) {
  users(first: 50, after: $after) { edges { node { id accounts { id } } } }
}"""


async def test_a_page_of_users_answers_with_one_of_them_over_the_accounts_bound(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    (over,) = await registered_users(engine, store, 1)
    await give_accounts(engine, over, MAX_PAGE + 1)

    schema = build_schema()
    context = client_context(services_on(engine, store, database_url))
    # From just before this user: the page holds it, and whichever users other tests made.
    result = await schema.execute(
        USERS_FROM, {"after": encode_cursor(over[:-1])}, context_value=context
    )

    assert result.data is not None
    edges = result.data["users"]["edges"]
    assert over in {edge["node"]["id"] for edge in edges}
    # The database is shared with other tests, which may have left users over the bound too:
    # exactly the page's users over it (this one among them) answer null with the error.
    async with engine.connect() as conn:
        crowded = set(
            (
                await conn.execute(
                    select(accounts.c.owner_id)
                    .where(accounts.c.owner_id.in_([edge["node"]["id"] for edge in edges]))
                    .group_by(accounts.c.owner_id)
                    .having(func.count() > MAX_PAGE)
                )
            ).scalars()
        )
    assert over in crowded
    over_at = [i for i, edge in enumerate(edges) if edge["node"]["id"] in crowded]
    assert [i for i, edge in enumerate(edges) if edge["node"]["accounts"] is None] == over_at
    assert result.errors is not None
    assert [(e.path, (e.extensions or {}).get("code")) for e in result.errors] == [
        (["users", "edges", i, "node", "accounts"], "TOO_MANY_ACCOUNTS") for i in over_at
    ]


ACCOUNT = "query($id: ID!) { account(id: $id) { id ownerId balance } }"


async def test_accounts_asked_for_together_are_read_in_one_group_each_answered_its_own(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    owners = [f"user-{uuid.uuid4()}" for _ in range(3)]
    owned = {owner: await give_accounts(engine, owner, 2) for owner in owners}
    owner_of = {account: owner for owner, ids in owned.items() for account in ids}
    missing = f"account-{uuid.uuid4()}"
    asked = [*owner_of, *owner_of, missing]

    services = services_on(engine, store, database_url)
    statements: list[list[str]] = []

    async def counted(conn: Any, ids: list[str]) -> dict[str, AccountView]:
        statements.append(ids)
        return await read_accounts(conn, ids)

    services.__dict__["accounts"] = GroupedReads(services.reads, counted)
    schema = build_schema()
    try:
        results = await asyncio.gather(
            *(
                schema.execute(ACCOUNT, {"id": account}, context_value=client_context(services))
                for account in asked
            )
        )
        alone = await schema.execute(
            ACCOUNT, {"id": asked[0]}, context_value=client_context(services)
        )
    finally:
        await services.reads.close()

    for account, result in zip(asked, results, strict=True):
        assert result.errors is None, result.errors
        expected = (
            None
            if account == missing
            else {"id": account, "ownerId": owner_of[account], "balance": "0.00"}
        )
        assert result.data == {"account": expected}
    assert alone.data == {"account": results[0].data["account"]}  # type: ignore[index]
    # One statement for the requests in flight together (each id once), one for the last.
    assert [sorted(ids) for ids in statements] == [sorted({*asked}), [asked[0]]]
