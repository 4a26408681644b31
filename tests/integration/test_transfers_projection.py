"""The transfers read model follows each transfer's events: status, reason and steps."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.database import ReadPool
from adapters.event_store import PostgresEventStore
from domain.transfers import (
    TransferCompleted,
    TransferRejected,
    TransferRequested,
    TransferStatus,
    TransferStepCompensated,
    TransferStepCompleted,
)
from projections.transfers import TransfersProjection, get_transfer, read_transfer
from tests.projecting import stored


async def test_a_completed_transfer_shows_its_accounts_amount_steps_and_status(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    transfer_id = f"transfer-{uuid.uuid4()}"
    events = await stored(
        store,
        transfer_id,
        [
            TransferRequested(transfer_id, "account-a", "account-b", Decimal("12.50")),
            TransferStepCompleted(transfer_id, "reserve_daily_limit"),
            TransferStepCompleted(transfer_id, "withdraw"),
            TransferStepCompleted(transfer_id, "deposit"),
            TransferCompleted(transfer_id),
        ],
    )
    async with engine.begin() as conn:
        await TransfersProjection().apply_batch(conn, events[:2])
        midway = await get_transfer(conn, transfer_id)
        await TransfersProjection().apply_batch(conn, events[2:])
        view = await get_transfer(conn, transfer_id)

    assert midway is not None
    assert (midway.status, midway.steps) == (TransferStatus.REQUESTED, ["reserve_daily_limit"])
    assert view is not None
    assert (view.from_account_id, view.to_account_id, view.amount) == (
        "account-a",
        "account-b",
        Decimal("12.50"),
    )
    assert view.status is TransferStatus.COMPLETED and view.reason is None
    assert view.steps == ["reserve_daily_limit", "withdraw", "deposit"]
    assert view.created_at == events[0].recorded_at
    assert view.updated_at == events[-1].recorded_at


async def test_a_rejected_transfer_shows_its_reason_and_compensations_once_when_replayed(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    transfer_id = f"transfer-{uuid.uuid4()}"
    events = await stored(
        store,
        transfer_id,
        [
            TransferRequested(transfer_id, "account-a", "account-c", Decimal("60.00")),
            TransferStepCompleted(transfer_id, "reserve_daily_limit"),
            TransferStepCompleted(transfer_id, "withdraw"),
            TransferStepCompensated(transfer_id, "withdraw"),
            TransferStepCompensated(transfer_id, "reserve_daily_limit"),
            TransferRejected(transfer_id, "account account-c is closed", "AccountClosed"),
        ],
    )
    async with engine.begin() as conn:
        await TransfersProjection().apply_batch(conn, events)
        await TransfersProjection().apply_batch(conn, events)  # a redelivered batch
        view = await get_transfer(conn, transfer_id)

    assert view is not None
    assert (view.status, view.reason) == (TransferStatus.REJECTED, "account account-c is closed")
    assert view.steps == [
        "reserve_daily_limit",
        "withdraw",
        "compensated:withdraw",
        "compensated:reserve_daily_limit",
    ]


async def test_read_transfer_on_a_plain_connection_answers_as_get_transfer(
    engine: AsyncEngine, store: PostgresEventStore, database_url: str
) -> None:
    transfer_id = f"transfer-{uuid.uuid4()}"
    details = {"account_id": "account-a", "limit": "10.00"}
    events = await stored(
        store,
        transfer_id,
        [
            TransferRequested(transfer_id, "account-a", "account-d", Decimal("20.00")),
            TransferStepCompleted(transfer_id, "reserve_daily_limit"),
            TransferStepCompensated(transfer_id, "reserve_daily_limit"),
            TransferRejected(transfer_id, "over the daily limit", "DailyLimitExceeded", details),
        ],
    )
    async with engine.begin() as conn:
        await TransfersProjection().apply_batch(conn, events)
    async with engine.connect() as conn:
        expected = await get_transfer(conn, transfer_id)
    reads = ReadPool(database_url, 1)
    try:
        async with reads.connection() as plain:
            view = await read_transfer(plain, transfer_id)
            missing = await read_transfer(plain, f"transfer-{uuid.uuid4()}")
    finally:
        await reads.close()

    assert expected is not None and view == expected
    assert view.reason_details == details
    assert view.steps == ["reserve_daily_limit", "compensated:reserve_daily_limit"]
    assert missing is None
