"""A transferId reused for another transfer answers InvalidInput even when the saga's answer
does not come in time: the transfer the read model has under the id is not shown."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from temporalio.client import Client

from adapters.database import ReadPool
from adapters.event_store import PostgresEventStore
from api.auth import Caller, Role, TokenCheck
from api.context import Context, Services
from api.live import EventFeed
from api.schema import build_schema
from projections.transfers import transfers
from runtime.config import Settings

TRANSFER = """
mutation($in: TransferMoneyInput!) {
  transferMoney(input: $in) {
    __typename
    ... on InvalidInput { field }
    ... on TransferPending { transfer { id toAccountId amount } }
  }
}"""


class SlowSagas:
    """A Temporal client whose transfer sagas start and do not answer within the command
    timeout."""

    async def execute_update_with_start_workflow(self, update: Any, **options: Any) -> None:
        await asyncio.Event().wait()

    def get_workflow_handle(self, workflow_id: str, **options: Any) -> SlowSagas:
        return self

    async def describe(self, **options: Any) -> None:
        """The saga is known: it was started."""


async def transfer(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str, request: dict[str, str]
) -> dict[str, Any]:
    settings = Settings(database_url=database_url, command_timeout_seconds=0.2)
    services = Services(
        settings=settings,
        engine=engine,
        temporal=cast(Client, SlowSagas()),
        tokens=TokenCheck({}),
        feed=EventFeed(store, database_url),
        reads=ReadPool(database_url, 1),
        primary_reads=ReadPool(database_url, 1),
    )
    context = Context(
        services=services,
        request=Request({"type": "http", "method": "POST", "headers": []}),
        caller=Caller(Role.CLIENT, "test"),
    )
    result = await build_schema().execute(TRANSFER, {"in": request}, context_value=context)
    assert result.errors is None, result.errors
    data: dict[str, Any] = result.data  # type: ignore[assignment]
    return cast(dict[str, Any], data["transferMoney"])


async def first_transfer(engine: AsyncEngine) -> dict[str, str]:
    """A transfer of 5.00 from a to b, in the read model."""
    first = {
        "transferId": f"t-{uuid.uuid4()}",
        "fromAccountId": f"a-{uuid.uuid4()}",
        "toAccountId": f"b-{uuid.uuid4()}",
        "amount": "5.00",
    }
    now = datetime.now(UTC)
    row = {
        "id": first["transferId"],
        "from_account_id": first["fromAccountId"],
        "to_account_id": first["toAccountId"],
        "amount": Decimal("5.00"),
        "status": "REQUESTED",
        "steps": [],
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    async with engine.begin() as conn:
        await conn.execute(insert(transfers).values(row))
    return first


async def test_another_transfer_under_a_used_id_pending_answers_invalid_input(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    first = await first_transfer(engine)
    other = {**first, "toAccountId": f"c-{uuid.uuid4()}"}
    answered = await transfer(engine, store, database_url, other)
    assert answered == {"__typename": "InvalidInput", "field": "transferId"}


async def test_the_same_transfer_again_pending_shows_it(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    first = await first_transfer(engine)
    answered = await transfer(engine, store, database_url, {**first, "amount": "5"})
    assert answered["__typename"] == "TransferPending"
    assert answered["transfer"]["id"] == first["transferId"]
    assert answered["transfer"]["toAccountId"] == first["toAccountId"]
