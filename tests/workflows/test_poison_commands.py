"""A command that reaches its activity and fails there for neither a rule nor an outage ends.

The events table rejects the events a test marked (tests/poison.py): every command workflow
then answers with its failure after a bounded number of attempts, and a transfer saga parks.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from activities.command_handling import COMMAND_FAILED, FAILED_ATTEMPTS
from adapters.event_store import PostgresEventStore
from adapters.schema import events
from domain.accounts import CloseAccount, DepositMoney, OpenAccount, WithdrawMoney
from domain.users import (
    ChangeUserEmail,
    LockUser,
    RecordLoginAttempt,
    RegisterUser,
    UnlockUser,
)
from runtime.config import Settings
from runtime.worker import create_worker
from tests.poison import Poison
from tests.waiting import eventually
from tests.workflows.bank import Bank
from workflows import search_attributes
from workflows.accounts import (
    CloseAccountWorkflow,
    DepositMoneyWorkflow,
    OpenAccountWorkflow,
    WithdrawMoneyWorkflow,
)
from workflows.command_outcomes import CommandOutcome
from workflows.saga import SagaStatus
from workflows.transfers import TransferSaga
from workflows.users import (
    ChangeUserEmailWorkflow,
    LockUserWorkflow,
    RecordLoginAttemptWorkflow,
    RegisterUserWorkflow,
    UnlockUserWorkflow,
)

# Fewer attempts than the default, so a poison command ends sooner; still more than one, so
# the tests see the attempts before the last retried and the last one fail for good.
ATTEMPTS = 2
assert ATTEMPTS < FAILED_ATTEMPTS
# A minute is the most a failing command may run (two attempts take 200 ms of backoff).
ENDS_WITHIN = 60.0


@pytest.fixture(scope="module")
async def poison_queue(
    settings: Settings, client: Client, engine: AsyncEngine, store: PostgresEventStore
) -> AsyncIterator[str]:
    """The task queue of a worker that tries each command ATTEMPTS times."""
    queue = f"poison-{uuid.uuid4()}"
    update = {"temporal_task_queue": queue, "command_attempts": ATTEMPTS}
    async with create_worker(settings.model_copy(update=update), client, engine, store):
        yield queue


@pytest.fixture
def bank(store: PostgresEventStore, client: Client, poison_queue: str) -> Bank:
    return Bank(store, client, poison_queue)


@pytest.fixture
async def poison(engine: AsyncEngine) -> AsyncIterator[Poison]:
    poison = Poison(engine)
    await poison.install()
    yield poison
    await poison.uninstall()


Case = Callable[[Bank, Poison, str], Awaitable[tuple[Any, Any, str]]]
"""Sets up one command: its workflow, the command, and the stream it must leave unchanged."""


async def register_user(bank: Bank, poison: Poison, marker: str) -> tuple[Any, Any, str]:
    user_id = f"user-{marker}"
    await poison.mark(marker)
    command = RegisterUser(str(uuid.uuid4()), user_id, f"{marker}@example.com", "P", "hash")
    return RegisterUserWorkflow, command, user_id


async def change_email(bank: Bank, poison: Poison, marker: str) -> tuple[Any, Any, str]:
    user_id = await bank.user()
    await poison.mark(marker)
    return (
        ChangeUserEmailWorkflow,
        ChangeUserEmail(str(uuid.uuid4()), user_id, f"{marker}@x.org"),
        user_id,
    )


async def lock_user(bank: Bank, poison: Poison, marker: str) -> tuple[Any, Any, str]:
    user_id = await bank.user()
    await poison.mark(marker)
    return LockUserWorkflow, LockUser(str(uuid.uuid4()), user_id, marker), user_id


async def unlock_user(bank: Bank, poison: Poison, marker: str) -> tuple[Any, Any, str]:
    user_id = await bank.user(locked=True)
    await poison.mark(user_id, "UserUnlocked")
    return UnlockUserWorkflow, UnlockUser(str(uuid.uuid4()), user_id), user_id


async def record_login(bank: Bank, poison: Poison, marker: str) -> tuple[Any, Any, str]:
    user_id = await bank.user()
    await poison.mark(marker)
    command = RecordLoginAttempt(str(uuid.uuid4()), user_id, False, marker)
    return RecordLoginAttemptWorkflow, command, user_id


async def open_account(bank: Bank, poison: Poison, marker: str) -> tuple[Any, Any, str]:
    owner = await bank.user()
    account_id = f"account-{marker}"
    await poison.mark(marker)
    return OpenAccountWorkflow, OpenAccount(str(uuid.uuid4()), account_id, owner, "EUR"), account_id


async def deposit(bank: Bank, poison: Poison, marker: str) -> tuple[Any, Any, str]:
    account_id = await bank.account("0")
    await poison.mark(account_id, "MoneyDeposited")
    command = DepositMoney(str(uuid.uuid4()), account_id, Decimal("5.00"))
    return DepositMoneyWorkflow, command, account_id


async def withdraw(bank: Bank, poison: Poison, marker: str) -> tuple[Any, Any, str]:
    account_id = await bank.account("100.00")
    await poison.mark(account_id, "MoneyWithdrawn")
    command = WithdrawMoney(str(uuid.uuid4()), account_id, Decimal("5.00"))
    return WithdrawMoneyWorkflow, command, account_id


async def close_account(bank: Bank, poison: Poison, marker: str) -> tuple[Any, Any, str]:
    account_id = await bank.account("0")
    await poison.mark(account_id, "AccountClosed")
    return CloseAccountWorkflow, CloseAccount(str(uuid.uuid4()), account_id), account_id


CASES: list[Case] = [
    register_user,
    change_email,
    lock_user,
    unlock_user,
    record_login,
    open_account,
    deposit,
    withdraw,
    close_account,
]


async def stream_length(engine: AsyncEngine, stream_id: str) -> int:
    query = select(func.count()).select_from(events).where(events.c.stream_id == stream_id)
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def last_attempt(handle: WorkflowHandle[Any, Any]) -> int:
    """The attempt number of the workflow's last activity task (history keeps only that one)."""
    started = EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    attempts = [
        event.activity_task_started_event_attributes.attempt
        async for event in handle.fetch_history_events()
        if event.event_type == started
    ]
    return attempts[-1]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
async def test_a_poison_command_ends_with_its_failure_after_a_bounded_number_of_attempts(
    case: Case, bank: Bank, poison: Poison, engine: AsyncEngine
) -> None:
    workflow, command, stream_id = await case(bank, poison, uuid.uuid4().hex)
    before = await stream_length(engine, stream_id)
    handle = await bank.client.start_workflow(
        workflow.run, command, id=f"poison/{command.command_id}", task_queue=bank.task_queue
    )

    outcome: CommandOutcome = await asyncio.wait_for(handle.result(), ENDS_WITHIN)

    assert outcome.result is None and outcome.rejection is None
    assert outcome.failure is not None, outcome
    assert outcome.failure.correlation_id == command.command_id
    assert "carries a poison marker" in outcome.failure.message
    assert await last_attempt(handle) == ATTEMPTS
    assert await stream_length(engine, stream_id) == before


async def test_a_transfer_failing_at_its_first_step_ends_failed_and_changes_nothing(
    bank: Bank, poison: Poison, engine: AsyncEngine
) -> None:
    source, destination = await bank.account("100.00"), await bank.account("0")
    transfer_id = f"transfer-{uuid.uuid4()}"
    await poison.mark(transfer_id)
    handle = await bank.start(source, destination, "30.00", transfer_id, with_attributes=True)

    outcome = await asyncio.wait_for(handle.result(), ENDS_WITHIN)

    assert (outcome.status, outcome.error_type) == ("FAILED", COMMAND_FAILED)
    state = await handle.query(TransferSaga.state)
    assert state.error is not None
    assert state.error.startswith("begin + reserve_daily_limit + withdraw: ")
    assert state.completed_steps == []
    assert await stream_length(engine, transfer_id) == 0
    assert await bank.balance(source) == Decimal("100.00")


async def saga_status(handle: WorkflowHandle[Any, Any]) -> str | None:
    attributes = (await handle.describe()).typed_search_attributes
    return attributes.get(search_attributes.SAGA_STATUS)


async def test_a_transfer_failing_after_its_first_step_parks_then_an_operator_retry_completes_it(
    bank: Bank, poison: Poison
) -> None:
    source, destination = await bank.account("100.00"), await bank.account("0")
    transfer_id = f"transfer-{uuid.uuid4()}"
    # The withdrawal shares the first step's transaction: the first step after it is the
    # deposit, where the saga parks.
    await poison.mark(transfer_id, "MoneyDeposited")
    handle = await bank.start(source, destination, "30.00", transfer_id, with_attributes=True)

    async def parked() -> bool:
        return await saga_status(handle) == SagaStatus.NEEDS_ATTENTION.value

    await eventually(parked, ENDS_WITHIN, "the saga parked as NEEDS_ATTENTION")
    state = await handle.query(TransferSaga.state)
    assert state.status is SagaStatus.NEEDS_ATTENTION
    assert state.error is not None and state.error.startswith("deposit + complete: ")
    assert state.completed_steps == ["begin", "reserve_daily_limit", "withdraw"]
    assert await bank.balance(source) == Decimal("70.00")
    assert await bank.balance(destination) == Decimal("0.00")

    await poison.cure(transfer_id)
    resumed = await handle.execute_update(TransferSaga.retry)
    outcome = await asyncio.wait_for(handle.result(), ENDS_WITHIN)

    assert resumed.status is SagaStatus.RUNNING
    assert outcome.status == "COMPLETED"
    assert await bank.balance(source) == Decimal("70.00")
    assert await bank.balance(destination) == Decimal("30.00")
    assert await saga_status(handle) == SagaStatus.COMPLETED.value


async def test_a_transfer_whose_withdrawal_fails_ends_failed_and_changes_nothing(
    bank: Bank, poison: Poison, engine: AsyncEngine
) -> None:
    # The withdrawal runs in the first step's transaction: failing, it undid the checks and
    # the reservation too, so nothing is owed and the saga ends at once.
    source, destination = await bank.account("100.00"), await bank.account("0")
    transfer_id = f"transfer-{uuid.uuid4()}"
    await poison.mark(transfer_id, "MoneyWithdrawn")
    handle = await bank.start(source, destination, "30.00", transfer_id, with_attributes=True)

    outcome = await asyncio.wait_for(handle.result(), ENDS_WITHIN)

    assert (outcome.status, outcome.error_type) == ("FAILED", COMMAND_FAILED)
    assert await stream_length(engine, transfer_id) == 0
    assert await bank.balance(source) == Decimal("100.00")


async def test_cancelling_a_transfer_parked_before_its_pivot_gives_the_money_back(
    bank: Bank, poison: Poison
) -> None:
    source, destination = await bank.account("100.00"), await bank.account("0")
    transfer_id = f"transfer-{uuid.uuid4()}"
    await poison.mark(transfer_id, "MoneyDeposited")
    handle = await bank.start(source, destination, "30.00", transfer_id, with_attributes=True)

    async def parked() -> bool:
        return await saga_status(handle) == SagaStatus.NEEDS_ATTENTION.value

    await eventually(parked, ENDS_WITHIN, "the saga parked as NEEDS_ATTENTION")
    assert await bank.balance(source) == Decimal("70.00")
    await handle.cancel()

    async def compensated() -> bool:
        return await saga_status(handle) == SagaStatus.COMPENSATED.value

    await eventually(compensated, ENDS_WITHIN, "the saga compensated")
    state = await handle.query(TransferSaga.state)
    assert state.error is not None and state.error.startswith("deposit + complete: ")
    assert await bank.balance(source) == Decimal("100.00")
    assert await bank.balance(destination) == Decimal("0.00")
