"""GraphQL queries against real read models: `users { accounts }` costs a bounded number of
statements however many users are on the page (DataLoader batching)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from temporalio.client import Client

from adapters.database import ReadPool, create_engine
from adapters.event_store import PostgresEventStore
from api.auth import Caller, Role, TokenCheck
from api.context import Context, Services
from api.live import EventFeed
from api.schema import build_schema
from domain.accounts import Account
from domain.repository import Repository
from domain.users import User
from projections.accounts import AccountsProjection
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
