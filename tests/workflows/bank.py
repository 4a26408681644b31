"""Test helpers: users and accounts set up through the real repository, transfers sent."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import ClassVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError

from activities.transfers import TransferActivities
from adapters.event_store import PostgresEventStore
from adapters.schema import events
from domain.accounts import Account
from domain.repository import Repository
from domain.transfers import TransferMoney
from domain.users import User, email_key
from tests.waiting import eventually
from workflows import search_attributes
from workflows.transfers import SAGA_TYPE, TransferOutcome, TransferSaga, transfer_workflow_id

TODAY = "2026-11-28"


class Bank:
    """Opens accounts and sends transfers against the session's real services."""

    def __init__(self, store: PostgresEventStore, client: Client, task_queue: str) -> None:
        self.repository = Repository(store)
        self.client = client
        self.task_queue = task_queue

    async def user(self, locked: bool = False) -> str:
        user = User(f"user-{uuid.uuid4()}")
        registered = user.register(f"{uuid.uuid4()}@example.com", "Holder")
        if locked:
            user.lock("test")
        await self.repository.save(
            user, lambda _: uuid.uuid4(), {}, claims=[email_key(registered.email)]
        )
        return user.id

    async def account(
        self,
        balance: str = "100.00",
        owner: str | None = None,
        limit: str = "10000.00",
        currency: str = "EUR",
    ) -> str:
        account = Account(f"account-{uuid.uuid4()}")
        account.open(owner or await self.user(), currency, Decimal(limit))
        if Decimal(balance):
            account.deposit(Decimal(balance))
        await self.repository.save(account, lambda _: uuid.uuid4(), {})
        return account.id

    async def close(self, account_id: str) -> None:
        account = await self.repository.load(Account, account_id)
        if account.balance:
            account.withdraw(account.balance)
        account.close()
        await self.repository.save(account, lambda _: uuid.uuid4(), {})

    async def balance(self, account_id: str) -> Decimal:
        return (await self.repository.load(Account, account_id)).balance

    async def start(
        self,
        source: str,
        destination: str,
        amount: str,
        transfer_id: str | None = None,
        with_attributes: bool = False,
        task_timeout: timedelta | None = None,
    ) -> WorkflowHandle[TransferSaga, TransferOutcome]:
        """Start a transfer; `with_attributes` starts it as the API does.

        `task_timeout` is the workflow task's (Temporal's default: 10 s). While a step (a local
        activity) runs, its workflow task stays open and is renewed only at 80% of that, so a
        cancellation or query that arrives meanwhile is seen no sooner.
        """
        command = TransferMoney(
            transfer_id or f"transfer-{uuid.uuid4()}", source, destination, Decimal(amount), TODAY
        )
        attributes = search_attributes.at_start(
            command.transfer_id, [command.transfer_id, source, destination], SAGA_TYPE
        )
        return await self.client.start_workflow(
            TransferSaga.run,
            command,
            id=transfer_workflow_id(command.transfer_id),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=attributes if with_attributes else None,
            task_timeout=task_timeout,
        )

    async def transfer(self, source: str, destination: str, amount: str) -> TransferOutcome:
        return await (await self.start(source, destination, amount)).result()


class RefundBlocked(TransferActivities):
    """Real transfer activities whose refund fails until the cause is fixed."""

    blocked = True

    @activity.defn(name="refund")
    async def refund(self, command: TransferMoney) -> int:  # type: ignore[override]
        if RefundBlocked.blocked:
            raise ApplicationError("refunds are blocked", type="RefundBlocked", non_retryable=True)
        return await super().refund(command)


class StepsHeld(TransferActivities):
    """Real transfer activities whose withdraw (alone, or with begin and the reservation) and
    deposit (alone, or with the completion) wait while the test holds them."""

    gates: ClassVar[dict[str, asyncio.Event]] = {}
    started: ClassVar[dict[str, asyncio.Event]] = {}

    @classmethod
    def hold(cls, step: str) -> None:
        cls.gates[step], cls.started[step] = asyncio.Event(), asyncio.Event()

    @classmethod
    def release_all(cls) -> None:
        for gate in cls.gates.values():
            gate.set()

    @classmethod
    async def pass_gate(cls, step: str) -> None:
        if step in cls.gates:
            cls.started[step].set()
            await cls.gates[step].wait()

    @activity.defn(name="withdraw")
    async def withdraw(self, command: TransferMoney) -> int:  # type: ignore[override]
        await StepsHeld.pass_gate("withdraw")
        return await super().withdraw(command)

    @activity.defn(name="begin_reserve_and_withdraw")
    async def begin_reserve_and_withdraw(self, command: TransferMoney) -> int:  # type: ignore[override]
        await StepsHeld.pass_gate("withdraw")
        return await super().begin_reserve_and_withdraw(command)

    @activity.defn(name="deposit")
    async def deposit(self, command: TransferMoney) -> int:  # type: ignore[override]
        await StepsHeld.pass_gate("deposit")
        return await super().deposit(command)

    @activity.defn(name="deposit_and_complete")
    async def deposit_and_complete(self, command: TransferMoney) -> int:  # type: ignore[override]
        await StepsHeld.pass_gate("deposit")
        return await super().deposit_and_complete(command)


async def cancellation_seen(
    handle: WorkflowHandle[TransferSaga, TransferOutcome], within: float = 30.0
) -> None:
    """Wait until the workflow has run a workflow task after its cancellation was requested."""
    requested = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED

    async def seen() -> bool:
        kinds = [event.event_type async for event in handle.fetch_history_events()]
        return requested in kinds and (
            EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in kinds[kinds.index(requested) :]
        )

    await eventually(seen, within, f"{handle.id} reacted to its cancellation")


MOVEMENTS = ("MoneyWithdrawn", "MoneyDeposited", "TransferRefunded")


async def movements(engine: AsyncEngine, transfer_ids: Sequence[str]) -> Counter[tuple[str, str]]:
    """How many of each money movement the store holds per transfer: (type, transfer id)."""
    query = select(events.c.type, events.c.data["transfer_id"].astext).where(
        events.c.type.in_(MOVEMENTS), events.c.data["transfer_id"].astext.in_(transfer_ids)
    )
    async with engine.connect() as conn:
        return Counter((kind, transfer) for kind, transfer in (await conn.execute(query)).all())


def assert_money_moved_as_told(
    outcomes: Sequence[TransferOutcome], moved: Counter[tuple[str, str]]
) -> None:
    """A completed transfer withdrew and deposited once; any other withdrawal was refunded."""
    for outcome in outcomes:
        counts = {kind: moved[(kind, outcome.transfer_id)] for kind in MOVEMENTS}
        if outcome.status == "COMPLETED":
            assert counts == dict.fromkeys(MOVEMENTS, 1) | {"TransferRefunded": 0}, outcome
        else:
            assert counts["MoneyDeposited"] == 0, outcome
            assert counts["MoneyWithdrawn"] == counts["TransferRefunded"] <= 1, outcome


def expected_balances(
    before: dict[str, Decimal],
    plans: Sequence[tuple[str, str, str]],
    outcomes: Sequence[TransferOutcome],
) -> dict[str, Decimal]:
    """The balances `before` moved by exactly the transfers that completed."""
    expected = dict(before)
    for (source, destination, amount), outcome in zip(plans, outcomes, strict=True):
        if outcome.status == "COMPLETED":
            expected[source] -= Decimal(amount)
            expected[destination] += Decimal(amount)
    return expected
