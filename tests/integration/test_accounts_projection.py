"""The accounts read model follows each account's events: opening, balance, closing."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.event_store import PostgresEventStore
from domain.accounts import (
    AccountClosed,
    AccountOpened,
    AccountStatus,
    DailyLimitReleased,
    DailyLimitReserved,
    MoneyDeposited,
    MoneyWithdrawn,
    TransferRefunded,
)
from projections.accounts import AccountsProjection, get_account
from tests.projecting import stored


async def test_an_account_shows_its_balance_after_each_event_and_its_closing(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    account_id = f"account-{uuid.uuid4()}"
    transfer_id = f"transfer-{uuid.uuid4()}"
    events = await stored(
        store,
        account_id,
        [
            AccountOpened(account_id, "user-a", "EUR", Decimal("500.00")),
            MoneyDeposited(account_id, Decimal("100.00")),
            DailyLimitReserved(account_id, transfer_id, Decimal("30.25"), "2026-12-03"),
            MoneyWithdrawn(account_id, Decimal("30.25"), transfer_id),
            TransferRefunded(account_id, transfer_id, Decimal("30.25")),
            DailyLimitReleased(account_id, transfer_id, Decimal("30.25"), "2026-12-03"),
            MoneyWithdrawn(account_id, Decimal("0.50")),
            AccountClosed(account_id),
        ],
    )
    async with engine.begin() as conn:
        await AccountsProjection().apply_batch(conn, events[:4])
        midway = await get_account(conn, account_id)
        await AccountsProjection().apply_batch(conn, events[4:])
        view = await get_account(conn, account_id)

    assert midway is not None
    assert (midway.owner_id, midway.currency, midway.status) == (
        "user-a",
        "EUR",
        AccountStatus.OPEN,
    )
    assert (midway.balance, midway.version) == (Decimal("69.75"), 4)
    assert midway.opened_at == events[0].recorded_at
    assert midway.last_updated == events[3].recorded_at
    assert view is not None
    assert (view.balance, view.status, view.version) == (
        Decimal("99.50"),
        AccountStatus.CLOSED,
        8,
    )
    assert view.last_updated == events[-1].recorded_at


async def test_replayed_account_events_change_nothing(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    account_id = f"account-{uuid.uuid4()}"
    events = await stored(
        store,
        account_id,
        [
            AccountOpened(account_id, "user-b", "EUR", Decimal("500.00")),
            MoneyDeposited(account_id, Decimal("40.00")),
            MoneyWithdrawn(account_id, Decimal("15.00")),
        ],
    )
    async with engine.begin() as conn:
        await AccountsProjection().apply_batch(conn, events)
        # A batch applied again after a lost checkpoint move, then one event alone.
        await AccountsProjection().apply_batch(conn, events)
        await AccountsProjection().apply(conn, events[1])
        view = await get_account(conn, account_id)

    assert view is not None
    assert (view.balance, view.version) == (Decimal("25.00"), 3)
    assert view.last_updated == events[-1].recorded_at
