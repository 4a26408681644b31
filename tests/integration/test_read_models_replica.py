"""The API reads its read models (and waits on `consistentWith`) from SAGALINE_READ_DATABASE_URL
and keeps commands and access checks on the primary. The "replica" here is a second URL to
the same database: what is checked is which connection each statement goes through."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, cast

import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from temporalio.client import Client

from adapters.database import ReadPool, create_engine
from adapters.event_store import PostgresEventStore
from api.app import read_models_engine
from api.auth import Caller, Role, TokenCheck
from api.context import Context, Services
from api.schema import build_schema
from domain.accounts import Account
from domain.repository import Repository
from domain.users import User
from projections.accounts import AccountsProjection
from projections.projector import Projector
from runtime.config import Settings
from tests.projecting import project_through

ACCOUNT = """
query($id: ID!, $at: String!) { account(id: $id, consistentWith: $at) { id balance } }"""
TRANSFER = """
mutation($from: ID!, $to: ID!) {
  transferMoney(input: {fromAccountId: $from, toAccountId: $to, amount: "1"}) { __typename }
}"""


class RecordingTemporal:
    """Takes every workflow started (alone or with an update); none of them ever finishes (the
    command stays pending)."""

    def __init__(self) -> None:
        self.started: list[Any] = []

    async def start_workflow(self, run: Any, command: Any, **options: Any) -> RecordingTemporal:
        self.started.append(command)
        return self

    async def execute_update_with_start_workflow(
        self, update: Any, *, start_workflow_operation: Any, **options: Any
    ) -> None:
        # How the API starts a transfer; the SDK keeps the start's arguments in its input.
        self.started.append(start_workflow_operation._start_workflow_input.args[0])
        await asyncio.Event().wait()

    async def result(self) -> None:
        await asyncio.Event().wait()

    def get_workflow_handle(self, workflow_id: str, **options: Any) -> RecordingTemporal:
        return self

    async def describe(self, **options: Any) -> None:
        """Every workflow asked about is known: each was started."""


class Statements:
    """The SQL each engine ran since the last `clear`."""

    def __init__(self, **engines: AsyncEngine) -> None:
        self.ran: dict[str, list[str]] = {name: [] for name in engines}
        for name, engine in engines.items():
            event.listen(engine.sync_engine, "before_cursor_execute", self._recorder(name))

    def _recorder(self, name: str) -> Any:
        def record(*args: Any) -> None:
            self.ran[name].append(str(args[2]))

        return record

    def touching(self, name: str, table: str) -> list[str]:
        return [sql for sql in self.ran[name] if f"FROM {table}" in sql]

    def clear(self) -> None:
        for ran in self.ran.values():
            ran.clear()


@pytest.fixture
async def read_url(database_url: str) -> str:
    return f"{database_url}{'&' if '?' in database_url else '?'}application_name=read-replica"


@pytest.fixture
async def primary(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The API's primary engine, of this test's own: the statements recorded on it are the
    API's, not those of anything else using the session's shared engine."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def replica(read_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(read_url, autocommit=True)
    yield engine
    await engine.dispose()


class RecordingReads(ReadPool):
    """The hot-read pool, noting which server (by application name) each read went to."""

    def __init__(self, database_url: str, size: int) -> None:
        super().__init__(database_url, size)
        self.servers: list[str | None] = []

    @contextlib.asynccontextmanager
    async def connection(
        self, wait_seconds: float | None = None
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with super().connection(wait_seconds) as conn:
            self.servers.append(conn.info.parameter_status("application_name"))
            yield conn


async def test_queries_and_their_waits_go_to_the_read_url_and_commands_to_the_primary(
    engine: AsyncEngine,
    primary: AsyncEngine,
    replica: AsyncEngine,
    store: PostgresEventStore,
    database_url: str,
    read_url: str,
) -> None:
    repository = Repository(store)
    owner = User(f"user-{uuid.uuid4()}")
    owner.register(f"{uuid.uuid4()}@example.com", "Owner")
    await repository.save(owner, lambda _: uuid.uuid4(), {})
    accounts = []
    for _ in range(2):
        account = Account(f"account-{uuid.uuid4()}")
        account.open(owner.id, "EUR", Decimal(100))
        account.deposit(Decimal(5))
        await repository.save(account, lambda _: uuid.uuid4(), {})
        accounts.append(account.id)
    position = await store.head_position()
    projector = Projector(engine, store, AccountsProjection(), batch_size=2_000)
    await project_through(engine, projector, position)

    temporal = RecordingTemporal()
    reads = RecordingReads(read_url, 1)
    settings = Settings(
        database_url=database_url, read_database_url=read_url, command_timeout_seconds=0.2
    )
    services = Services(
        settings=settings,
        engine=primary,
        temporal=cast(Client, temporal),
        tokens=TokenCheck({}),
        feed=cast(Any, None),
        reads=reads,
        primary_reads=ReadPool(database_url, 1),
        read_models=replica,
    )
    context = Context(
        services=services,
        request=Request({"type": "http", "method": "POST", "headers": []}),
        caller=Caller(Role.CUSTOMER, "customer", user_id=owner.id),
    )
    schema = build_schema()
    statements = Statements(primary=primary, replica=replica)

    query = {"id": accounts[0], "at": str(position)}
    result = await schema.execute(ACCOUNT, query, context_value=context)
    assert result.errors is None, result.errors
    assert result.data == {"account": {"id": accounts[0], "balance": "5.00"}}
    assert statements.touching("replica", "checkpoints"), "consistentWith did not wait there"
    assert reads.servers == ["read-replica"], "the account was not read from the read URL"
    assert not statements.touching("primary", "checkpoints")
    assert not statements.touching("primary", "accounts")

    statements.clear()
    result = await schema.execute(
        TRANSFER, {"from": accounts[0], "to": accounts[1]}, context_value=context
    )
    assert result.errors is None, result.errors
    assert [command.from_account_id for command in temporal.started] == [accounts[0]]
    # The customer's right to move money out of the account is read from the primary.
    assert statements.touching("primary", "accounts")
    assert not statements.touching("replica", "accounts")
    await reads.close()


def test_the_read_url_defaults_to_the_primary(database_url: str, read_url: str) -> None:
    primary_only = Settings(database_url=database_url)
    assert primary_only.require_read_database_url() == database_url
    assert read_models_engine(primary_only) is None
    with_replica = Settings(database_url=database_url, read_database_url=read_url)
    assert with_replica.require_read_database_url() == read_url
    assert read_models_engine(with_replica) is not None
