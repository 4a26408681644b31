"""Transfer steps: each changes a balance at most once, whatever runs twice."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TypeVar

import pytest

from domain.accounts import (
    Account,
    AccountOpened,
    DailyLimitReleased,
    DailyLimitReserved,
    MoneyDeposited,
    MoneyWithdrawn,
    TransferRefunded,
)
from domain.aggregate import Aggregate
from domain.errors import InvalidInput
from domain.events import DomainEvent
from domain.transfers import (
    NotTheTransfersAccount,
    Transfer,
    TransferNotFound,
    TransferRequested,
    TransferStepCompensated,
    TransferStepCompleted,
)

DAY = "2026-11-28"
Step = Callable[[Account, Transfer], None]


def opened(account_id: str, balance: str = "100.00", limit: str = "500.00") -> Account:
    return Account.replay(
        account_id,
        [
            AccountOpened(account_id, "owner-1", "EUR", Decimal(limit)),
            MoneyDeposited(account_id, Decimal(balance)),
        ],
    )


def requested(
    transfer_id: str = "t-1",
    amount: str = "30.00",
    source: str = "source",
    destination: str = "destination",
) -> Transfer:
    return Transfer.replay(
        transfer_id, [TransferRequested(transfer_id, source, destination, Decimal(amount))]
    )


ACCOUNT_EVENTS = [
    AccountOpened("account-1", "owner-1", "EUR", Decimal("500.00")),
    MoneyDeposited("account-1", Decimal("7.00")),
]

A = TypeVar("A", bound=Aggregate)


def reloaded(aggregate: A) -> A:
    """The aggregate as a retry would load it after the save: from its saved state."""
    version = aggregate.version + len(aggregate.pending)
    return type(aggregate).from_snapshot(aggregate.id, aggregate.snapshot_state(), version)


def saved(account: Account, transfer: Transfer) -> tuple[Account, Transfer]:
    return reloaded(account), reloaded(transfer)


def step_all(account: Account, transfer: Transfer, steps: list[Step]) -> tuple[Account, Transfer]:
    for step in steps:
        step(account, transfer)
    return saved(account, transfer)


def reserve(account: Account, transfer: Transfer) -> None:
    transfer.reserve_daily_limit(account, DAY)


def release(account: Account, transfer: Transfer) -> None:
    transfer.release_daily_limit(account)


def withdraw(account: Account, transfer: Transfer) -> None:
    transfer.withdraw(account)


def refund(account: Account, transfer: Transfer) -> None:
    transfer.refund(account)


def deposit(account: Account, transfer: Transfer) -> None:
    transfer.deposit(account)


def test_a_withdraw_takes_the_requested_amount_and_records_the_step() -> None:
    source, transfer = opened("source"), requested()
    transfer.withdraw(source)

    assert source.pending == [MoneyWithdrawn("source", Decimal("30.00"), "t-1")]
    assert transfer.pending == [TransferStepCompleted("t-1", "withdraw")]
    assert source.balance == Decimal("70.00")


@pytest.mark.parametrize(
    ("steps", "balance", "reserved"),
    [
        ([reserve], "100.00", "30.00"),
        ([withdraw], "70.00", "0.00"),
        ([deposit], "130.00", "0.00"),
        ([reserve, withdraw, refund], "100.00", "30.00"),
        ([reserve, release], "100.00", "0.00"),
    ],
    ids=["reserve", "withdraw", "deposit", "refund", "release"],
)
def test_every_step_and_compensation_run_twice_changes_the_account_once(
    steps: list[Step], balance: str, reserved: str
) -> None:
    # One account on both sides, so deposits and withdrawals show on the same balance.
    account, transfer = opened("account"), requested(source="account", destination="account")
    for step in steps:
        step(account, transfer)
        account, transfer = saved(account, transfer)

    step(account, transfer)

    assert account.pending == [] and transfer.pending == []
    assert account.balance == Decimal(balance)
    assert account.reserved_on(DAY) == Decimal(reserved)


def test_a_refund_gives_back_exactly_what_was_withdrawn_and_records_the_compensation() -> None:
    source, transfer = step_all(opened("source"), requested(amount="12.34"), [withdraw])
    transfer.refund(source)

    assert source.pending == [TransferRefunded("source", "t-1", Decimal("12.34"))]
    assert transfer.pending == [TransferStepCompensated("t-1", "withdraw")]
    assert source.balance == Decimal("100.00")


def test_a_refund_of_a_transfer_that_never_withdrew_records_nothing() -> None:
    source, transfer = step_all(opened("source"), requested(), [reserve])
    transfer.refund(source)

    assert source.pending == [] and transfer.pending == []
    assert source.balance == Decimal("100.00")


def test_compensations_of_a_transfer_never_requested_record_nothing() -> None:
    source, transfer = opened("source"), Transfer("t-unknown")
    transfer.refund(source)
    transfer.release_daily_limit(source)

    assert source.pending == [] and transfer.pending == []


def test_a_step_of_a_transfer_never_requested_is_rejected_before_money_moves() -> None:
    source = opened("source")
    with pytest.raises(TransferNotFound):
        Transfer("t-unknown").withdraw(source)
    assert source.pending == [] and source.balance == Decimal("100.00")


def test_a_transfer_loaded_from_another_aggregates_stream_is_refused_as_bad_input() -> None:
    # A transferId chosen to be an account's id: its stream holds that account's events.
    with pytest.raises(InvalidInput) as refused:
        Transfer.replay("account-1", ACCOUNT_EVENTS)
    assert refused.value.field == "transferId"
    assert refused.value.message == "transferId: is in use by another stream; choose another"


def test_a_transfer_event_it_cannot_apply_is_still_a_bug_not_bad_input() -> None:
    @dataclass(frozen=True)
    class TransferEventWithoutACase(DomainEvent):
        transfer_id: str

    TransferEventWithoutACase.__module__ = Transfer.__module__
    with pytest.raises(TypeError, match="Transfer cannot apply"):
        Transfer.replay("t-1", [TransferEventWithoutACase("t-1")])


def test_a_withdraw_after_its_refund_takes_nothing_again() -> None:
    source, transfer = step_all(opened("source"), requested(), [withdraw, refund])
    transfer.withdraw(source)

    assert source.pending == [] and transfer.pending == []
    assert source.balance == Decimal("100.00")


def test_releasing_a_reservation_of_an_earlier_day_records_only_the_compensation() -> None:
    source, transfer = step_all(opened("source"), requested(), [reserve])
    source.reserve("t-next-day", Decimal("5.00"), "2026-11-29")
    transfer.release_daily_limit(source)

    assert source.pending == [
        DailyLimitReserved("source", "t-next-day", Decimal("5.00"), "2026-11-29")
    ]
    assert transfer.pending == [TransferStepCompensated("t-1", "reserve_daily_limit")]


def test_a_release_records_the_reserved_amount_and_day() -> None:
    source, transfer = step_all(opened("source"), requested(), [reserve])
    transfer.release_daily_limit(source)

    assert source.pending == [DailyLimitReleased("source", "t-1", Decimal("30.00"), DAY)]
    assert source.reserved_on(DAY) == 0


def test_plain_deposits_and_withdrawals_record_every_time() -> None:
    account = opened("account")
    for _ in range(2):
        account.deposit(Decimal("5.00"))
        account.withdraw(Decimal("2.00"))

    assert len(account.pending) == 4 and account.balance == Decimal("106.00")


def test_a_stored_refunded_transfer_folds_and_is_not_refunded_or_released_again() -> None:
    account = Account.replay(
        "account",
        [
            AccountOpened("account", "owner-1", "EUR", Decimal("500.00")),
            MoneyDeposited("account", Decimal("100.00")),
            DailyLimitReserved("account", "t-old", Decimal("40.00"), DAY),
            MoneyWithdrawn("account", Decimal("40.00"), "t-old"),
            TransferRefunded("account", "t-old", Decimal("40.00")),
            DailyLimitReleased("account", "t-old", Decimal("40.00"), DAY),
            MoneyDeposited("account", Decimal("7.00"), "t-in"),
        ],
    )
    transfer = Transfer.replay(
        "t-old",
        [
            TransferRequested("t-old", "account", "elsewhere", Decimal("40.00")),
            TransferStepCompleted("t-old", "reserve_daily_limit"),
            TransferStepCompleted("t-old", "withdraw"),
            TransferStepCompensated("t-old", "withdraw"),
            TransferStepCompensated("t-old", "reserve_daily_limit"),
        ],
    )
    assert account.balance == Decimal("107.00") and account.reservations == {}
    restored = Account.from_snapshot(account.id, account.snapshot_state(), account.version)
    assert vars(restored) == vars(account)

    transfer.refund(account)
    transfer.release_daily_limit(account)
    transfer.withdraw(account)

    assert account.pending == [] and transfer.pending == []
    assert account.balance == Decimal("107.00")


def test_a_transfers_snapshot_keeps_its_amount_and_steps() -> None:
    transfer = Transfer.replay(
        "t-1",
        [
            TransferRequested("t-1", "source", "destination", Decimal("9.99")),
            TransferStepCompleted("t-1", "withdraw"),
        ],
    )
    restored = reloaded(transfer)

    assert restored.amount == Decimal("9.99") and restored.steps == ["withdraw"]
    assert vars(restored) == vars(transfer)


def test_an_accounts_snapshot_state_stays_the_same_size_after_a_thousand_transfers() -> None:
    sender = opened("sender", balance="1000000.00")
    receiver = opened("receiver", balance="100000.00")
    first_day = date(2026, 1, 1)
    sizes: dict[str, set[int]] = {"sender": set(), "receiver": set()}
    for n in range(1000):
        day = (first_day + timedelta(days=n)).isoformat()
        refunded, completed = (
            requested(f"t-{n:04d}-{end}", "1.00", "sender", "receiver") for end in "rc"
        )
        for transfer in (refunded, completed):
            transfer.reserve_daily_limit(sender, day)
            transfer.withdraw(sender)
        refunded.refund(sender)
        refunded.release_daily_limit(sender)
        completed.deposit(receiver)
        for account in (sender, receiver):
            sizes[account.id].add(len(json.dumps(account.snapshot_state())))

    assert sender.balance == Decimal("999000.00") and receiver.balance == Decimal("101000.00")
    assert {name: len(found) for name, found in sizes.items()} == {"sender": 1, "receiver": 1}


def test_money_moves_only_on_the_accounts_the_transfer_was_requested_between() -> None:
    transfer, stranger = requested(), opened("stranger")
    for step in (withdraw, refund, reserve, release, deposit):
        with pytest.raises(NotTheTransfersAccount):
            step(stranger, transfer)
    assert stranger.pending == [] and transfer.pending == []
