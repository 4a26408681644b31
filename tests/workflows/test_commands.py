"""Account and user commands, each through its own workflow on a real Temporal server."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from adapters.event_store import PostgresEventStore
from domain.accounts import CloseAccount, DepositMoney, OpenAccount, WithdrawMoney
from domain.users import (
    ChangeUserEmail,
    LockUser,
    RecordLoginAttempt,
    UnlockUser,
    User,
    UserStatus,
)
from tests.workflows.bank import Bank
from workflows.accounts import (
    CloseAccountWorkflow,
    DepositMoneyWorkflow,
    OpenAccountWorkflow,
    WithdrawMoneyWorkflow,
)
from workflows.command_outcomes import CommandOutcome
from workflows.users import (
    ChangeUserEmailWorkflow,
    LockUserWorkflow,
    RecordLoginAttemptWorkflow,
    UnlockUserWorkflow,
)

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def bank(store: PostgresEventStore, client: Client, task_queue: str) -> Bank:
    return Bank(store, client, task_queue)


async def run(bank: Bank, workflow: Any, command: Any) -> CommandOutcome:
    handle = await bank.client.start_workflow(
        workflow.run,
        command,
        id=f"test/{command.command_id}",
        task_queue=bank.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    return await handle.result()  # type: ignore[no-any-return]


def command_id() -> str:
    return str(uuid.uuid4())


def rejected(outcome: CommandOutcome) -> str | None:
    return None if outcome.rejection is None else outcome.rejection.type


async def test_an_account_opens_takes_deposits_and_withdrawals_and_closes_when_empty(
    bank: Bank,
) -> None:
    owner = await bank.user()
    account_id = f"account-{uuid.uuid4()}"
    opened = await run(
        bank, OpenAccountWorkflow, OpenAccount(command_id(), account_id, owner, "EUR")
    )
    assert opened.result is not None and opened.result.version == 1
    await run(bank, DepositMoneyWorkflow, DepositMoney(command_id(), account_id, Decimal("30.00")))
    too_much = await run(
        bank, WithdrawMoneyWorkflow, WithdrawMoney(command_id(), account_id, Decimal("31.00"))
    )
    assert rejected(too_much) == "InsufficientFunds"
    not_empty = await run(bank, CloseAccountWorkflow, CloseAccount(command_id(), account_id))
    assert rejected(not_empty) == "BalanceNotZero"
    await run(bank, WithdrawMoneyWorkflow, WithdrawMoney(command_id(), account_id, Decimal("30")))
    closed = await run(bank, CloseAccountWorkflow, CloseAccount(command_id(), account_id))
    assert closed.rejection is None
    after = await run(
        bank, DepositMoneyWorkflow, DepositMoney(command_id(), account_id, Decimal(1))
    )
    assert rejected(after) == "AccountClosed"
    assert await bank.balance(account_id) == 0


async def test_opening_an_account_needs_an_existing_active_owner(bank: Bank) -> None:
    unknown = await run(
        bank, OpenAccountWorkflow, OpenAccount(command_id(), f"a-{uuid.uuid4()}", "nobody", "EUR")
    )
    assert rejected(unknown) == "UserNotFound"
    locked = await bank.user(locked=True)
    refused = await run(
        bank, OpenAccountWorkflow, OpenAccount(command_id(), f"a-{uuid.uuid4()}", locked, "EUR")
    )
    assert rejected(refused) == "UserLocked"


async def test_the_same_deposit_command_sent_twice_concurrently_deposits_once(bank: Bank) -> None:
    account_id = await bank.account("0")
    command = DepositMoney(command_id(), account_id, Decimal("12.50"))
    first, second = await asyncio.gather(
        run(bank, DepositMoneyWorkflow, command), run(bank, DepositMoneyWorkflow, command)
    )
    assert first == second
    assert await bank.balance(account_id) == Decimal("12.50")


async def test_changing_email_claims_the_new_address_and_frees_the_old(bank: Bank) -> None:
    first, second = await bank.user(), await bank.user()
    old = (await bank.repository.load(User, first)).email
    taken = (await bank.repository.load(User, second)).email
    clash = await run(bank, ChangeUserEmailWorkflow, ChangeUserEmail(command_id(), first, taken))
    assert rejected(clash) == "EmailAlreadyInUse"
    new = f"{uuid.uuid4()}@example.com"
    moved = await run(bank, ChangeUserEmailWorkflow, ChangeUserEmail(command_id(), first, new))
    assert moved.result is not None and moved.result.version == 2
    reuse = await run(bank, ChangeUserEmailWorkflow, ChangeUserEmail(command_id(), second, old))
    assert reuse.rejection is None
    stale = await run(
        bank,
        ChangeUserEmailWorkflow,
        ChangeUserEmail(command_id(), first, f"{uuid.uuid4()}@example.com", expected_version=1),
    )
    assert rejected(stale) == "ConcurrencyConflict"


async def test_lock_and_unlock_a_user(bank: Bank) -> None:
    user_id = await bank.user()
    await run(bank, LockUserWorkflow, LockUser(command_id(), user_id, "suspicious"))
    assert (await bank.repository.load(User, user_id)).status is UserStatus.LOCKED
    await run(bank, UnlockUserWorkflow, UnlockUser(command_id(), user_id))
    assert (await bank.repository.load(User, user_id)).status is UserStatus.ACTIVE
    unknown = await run(bank, LockUserWorkflow, LockUser(command_id(), "nobody", "x"))
    assert rejected(unknown) == "UserNotFound"


async def test_login_attempts_are_recorded_and_a_locked_user_always_fails(
    bank: Bank, store: PostgresEventStore
) -> None:
    user_id = await bank.user()
    ok = await run(
        bank, RecordLoginAttemptWorkflow, RecordLoginAttempt(command_id(), user_id, True)
    )
    bad = await run(
        bank, RecordLoginAttemptWorkflow, RecordLoginAttempt(command_id(), user_id, False, "pw")
    )
    await run(bank, LockUserWorkflow, LockUser(command_id(), user_id, "suspicious"))
    locked = await run(
        bank, RecordLoginAttemptWorkflow, RecordLoginAttempt(command_id(), user_id, True)
    )
    assert ok.result and bad.result and locked.result
    kinds = [e.type for e in await store.read_stream(user_id)]
    assert kinds == [
        "UserRegistered",
        "UserLoginSucceeded",
        "UserLoginFailed",
        "UserLocked",
        "UserLoginFailed",
    ]
