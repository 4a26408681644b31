"""Money is never created or lost: many concurrent transfers, some failing at every step."""

from __future__ import annotations

import asyncio
import random
import uuid
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from adapters.event_store import PostgresEventStore
from domain.accounts import Account
from domain.events import from_data
from tests.workflows.bank import Bank, assert_money_moved_as_told, expected_balances, movements

pytestmark = pytest.mark.usefixtures("worker")

ACCOUNTS = 20
TRANSFERS = 200


async def replayed_balance(store: PostgresEventStore, account_id: str) -> Decimal:
    """The balance computed from the account's raw events, independent of the aggregate."""
    balance = Decimal(0)
    for recorded in await store.read_stream(account_id):
        event = from_data(recorded.type, recorded.data, recorded.schema_version)
        if recorded.type in ("MoneyDeposited", "TransferRefunded"):
            balance += event.amount  # type: ignore[attr-defined]
        elif recorded.type == "MoneyWithdrawn":
            balance -= event.amount  # type: ignore[attr-defined]
    return balance


async def test_concurrent_random_transfers_keep_the_total_and_every_saga_ends(
    store: PostgresEventStore, client: Client, task_queue: str, engine: AsyncEngine
) -> None:
    bank = Bank(store, client, task_queue)
    rng = random.Random(42)
    locked_owner = await bank.user(locked=True)
    accounts = [
        await bank.account(
            balance=str(rng.randrange(0, 300)),
            limit=str(rng.choice([50, 200, 10_000])),
            owner=locked_owner if n == 0 else None,
        )
        for n in range(ACCOUNTS)
    ]
    closed = await bank.account("0")
    await bank.close(closed)
    unknown = f"account-{uuid.uuid4()}"
    before = {a: await bank.balance(a) for a in accounts}

    def destination(source: str) -> str:
        roll = rng.random()
        if roll < 0.08:
            return closed  # fails at deposit: refund and release
        if roll < 0.12:
            return unknown  # fails at begin
        return rng.choice([a for a in accounts if a != source])

    plans = []
    for _ in range(TRANSFERS):
        source = rng.choice(accounts)
        plans.append((source, destination(source), str(rng.randrange(1, 120))))
    handles = await asyncio.gather(*(bank.start(s, d, amount) for s, d, amount in plans))
    outcomes = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 240)

    rejected = {o.error_type for o in outcomes if o.status == "REJECTED"}
    assert {"AccountClosed", "AccountNotFound", "UserLocked"} <= rejected
    assert rejected & {"InsufficientFunds", "DailyLimitExceeded"}
    assert any(o.status == "COMPLETED" for o in outcomes)

    after = {a: await bank.balance(a) for a in accounts}
    assert sum(after.values()) == sum(before.values())
    assert after == expected_balances(before, plans, outcomes)
    assert_money_moved_as_told(outcomes, await movements(engine, [o.transfer_id for o in outcomes]))
    assert await bank.balance(closed) == 0
    for account_id in accounts:
        assert after[account_id] == await replayed_balance(store, account_id)
        account = await bank.repository.load(Account, account_id)
        assert account.balance >= 0
