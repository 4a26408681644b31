"""A command that finished before its read model caught up answers CommandPending, not a
server error nor the state from before it: sending it again (same command id) is safe."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from temporalio.client import Client

from activities.command_handling import CommandResult
from adapters.database import ReadPool
from adapters.event_store import PostgresEventStore
from api.auth import Caller, Role, TokenCheck
from api.context import Context, Services
from api.live import EventFeed
from api.schema import build_schema
from domain.accounts import Account
from domain.repository import Repository
from projections.accounts import AccountsProjection, get_account
from projections.projector import Projector
from runtime.config import Settings
from tests.projecting import project_through
from workflows.command_outcomes import CommandOutcome

REGISTER = """
mutation($in: RegisterUserInput!) {
  registerUser(input: $in) {
    __typename ... on CommandPending { commandId } ... on UserRegistered { position }
  }
}"""
OPEN = """
mutation($in: OpenAccountInput!) {
  openAccount(input: $in) {
    __typename ... on CommandPending { commandId } ... on AccountOpened { position }
  }
}"""
DEPOSIT = """
mutation($in: DepositMoneyInput!) {
  depositMoney(input: $in) {
    __typename ... on CommandPending { commandId }
    ... on MoneyDeposited { account { balance } position }
  }
}"""


class FinishedCommands:
    """A Temporal client whose every command's workflow has already finished with `result`."""

    def __init__(self, store: PostgresEventStore) -> None:
        self._store = store
        self.aggregate_id = ""
        self.version = 1

    async def start_workflow(self, run: Any, command: Any, **options: Any) -> FinishedCommands:
        return self

    async def result(self) -> CommandOutcome:
        # Past anything any projector has processed: the read model lags behind it.
        position = await self._store.head_position() + 1_000_000
        return CommandOutcome(result=CommandResult(self.aggregate_id, self.version, position))


async def answer(
    commands: FinishedCommands,
    engine: AsyncEngine,
    store: PostgresEventStore,
    database_url: str,
    query: str,
    variables: dict[str, Any],
) -> dict[str, Any]:
    settings = Settings(database_url=database_url, consistency_timeout_seconds=0.2)
    services = Services(
        settings=settings,
        engine=engine,
        temporal=cast(Client, commands),
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
    result = await build_schema().execute(query, variables, context_value=context)
    assert result.errors is None, result.errors
    data: dict[str, Any] = result.data  # type: ignore[assignment]
    (payload,) = data.values()
    return cast(dict[str, Any], payload)


async def test_a_registration_its_read_model_has_not_caught_up_with_answers_command_pending(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    commands = FinishedCommands(store)
    commands.aggregate_id = f"user-{uuid.uuid4()}"
    command_id = f"lagging-{uuid.uuid4()}"
    registration = {
        "email": f"{command_id}@example.com",
        "name": "Lag",
        "password": "a-good-password",
        "commandId": command_id,
    }
    answered = await answer(commands, engine, store, database_url, REGISTER, {"in": registration})
    assert answered == {"__typename": "CommandPending", "commandId": command_id}


async def test_an_account_its_read_model_has_not_caught_up_with_answers_command_pending(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    commands = FinishedCommands(store)
    commands.aggregate_id = f"account-{uuid.uuid4()}"
    command_id = f"lagging-{uuid.uuid4()}"
    opening = {"ownerId": f"user-{uuid.uuid4()}", "commandId": command_id}
    answered = await answer(commands, engine, store, database_url, OPEN, {"in": opening})
    assert answered == {"__typename": "CommandPending", "commandId": command_id}


async def test_a_deposit_its_read_model_has_not_caught_up_with_answers_no_stale_balance(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    account = Account(f"account-{uuid.uuid4()}")
    account.open(f"user-{uuid.uuid4()}", "EUR", Decimal(100))
    saved = await Repository(store).save(account, lambda _: uuid.uuid4(), {})
    projector = Projector(engine, store, AccountsProjection(), batch_size=2_000)
    await project_through(engine, projector, saved.position)
    async with engine.connect() as conn:
        projected = await get_account(conn, account.id)
    assert projected is not None and projected.version == account.version
    commands = FinishedCommands(store)
    commands.aggregate_id, commands.version = account.id, account.version + 1
    command_id = f"lagging-{uuid.uuid4()}"
    deposit = {"accountId": account.id, "amount": "5.00", "commandId": command_id}
    answered = await answer(commands, engine, store, database_url, DEPOSIT, {"in": deposit})
    assert answered == {"__typename": "CommandPending", "commandId": command_id}
