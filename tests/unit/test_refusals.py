"""A refusal with an account's figures keeps them as facts, and its text is made from them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

import pytest

from api.access import details_shown, reason_shown
from api.auth import Caller, Role
from api.context import Context
from domain.accounts import (
    AccountClosedError,
    BalanceCeilingExceeded,
    BalanceNotZero,
    DailyLimitExceeded,
    InsufficientFunds,
)
from domain.errors import DomainError
from domain.money import MAX_BALANCE
from domain.refusals import Refusal, RefusalKind
from runtime.config import Settings
from tests.unit.test_http_edge_rules import services_without_backends

D = Decimal
REFUSALS: list[tuple[DomainError, Refusal, str]] = [
    (
        InsufficientFunds("a-1", D("90.00"), D("1000.00")),
        Refusal(RefusalKind.INSUFFICIENT_FUNDS, "a-1", balance=D("90.00"), amount=D("1000.00")),
        "account a-1 has (hidden), cannot withdraw (hidden)",
    ),
    (
        DailyLimitExceeded("a-1", D("300.00"), D("500.00")),
        Refusal(RefusalKind.DAILY_LIMIT_EXCEEDED, "a-1", amount=D("500.00"), remaining=D("300.00")),
        "account a-1 may send (hidden) more today, not (hidden)",
    ),
    (
        BalanceNotZero("a-1", D("5.00")),
        Refusal(RefusalKind.BALANCE_NOT_ZERO, "a-1", balance=D("5.00")),
        "account a-1 still holds (hidden)",
    ),
    (
        BalanceCeilingExceeded("a-1", D("1.00"), D("2.00")),
        Refusal(
            RefusalKind.BALANCE_CEILING_EXCEEDED,
            "a-1",
            balance=D("1.00"),
            amount=D("2.00"),
            ceiling=MAX_BALANCE,
        ),
        "account a-1 holds (hidden); with (hidden) more it would pass the ceiling of (hidden)",
    ),
]


@pytest.mark.parametrize(("error", "refusal", "hidden"), REFUSALS)
def test_a_refusal_with_figures_carries_them_as_facts_its_text_is_made_from(
    error: DomainError, refusal: Refusal, hidden: str
) -> None:
    assert error.refusal == refusal
    assert error.code == refusal.kind.value
    assert error.message == refusal.text()
    assert error.details == refusal.facts()
    assert Refusal.from_facts(error.details) == refusal
    assert refusal.text(amounts_hidden=True) == hidden


def test_the_old_wording_stays_the_text_clients_read() -> None:
    error = InsufficientFunds("a-1", D("90.00"), D("1000.00"))
    assert error.message == "account a-1 has 90.00, cannot withdraw 1000.00"


@pytest.mark.parametrize(
    "details",
    [
        None,
        {},
        AccountClosedError("a-1").details,
        {"kind": "InsufficientFunds", "account_id": "a-1", "balance": "90.00"},
        {"kind": "InsufficientFunds", "account_id": "a-1", "balance": "x", "amount": "1.00"},
        {"kind": "SomethingElse", "account_id": "a-1", "balance": "1.00"},
        {"kind": "BalanceNotZero", "balance": "1.00"},
    ],
)
def test_details_that_are_no_refusals_facts_give_no_refusal(details: Any) -> None:
    assert Refusal.from_facts(details) is None


def context(caller: Caller) -> Context:
    return Context(services_without_backends(Settings()), cast(Any, None), caller)


async def test_a_reason_kept_without_facts_shows_a_customer_no_figure_whoever_it_names() -> None:
    # Kept before refusals had facts, or worded without "account <id>": nothing is parsed.
    reason = "the sender's balance 90.00 cannot cover 1000.00"
    customer = context(Caller(Role.CUSTOMER, "customer:u-1", "u-1"))
    assert await reason_shown(customer, reason) == (
        "the sender's balance (hidden) cannot cover (hidden)"
    )
    back_end = context(Caller(Role.CLIENT, "client:0123456789ab"))
    refusal = InsufficientFunds("a-1", D("90.00"), D("1000.00"))
    assert await reason_shown(back_end, reason) == reason
    assert await reason_shown(back_end, refusal.message, refusal.details) == refusal.message


async def test_details_that_are_no_refusal_show_a_customer_no_figure() -> None:
    details = {
        "kind": "InsufficientFunds",
        "account_id": "a-1",
        "balance": "90.00",
        "held": "1000",
        "count": 3,
        "final": True,
        "note": "the sender holds 90.00, not 1000.00",
    }
    customer = context(Caller(Role.CUSTOMER, "customer:u-1", "u-1"))
    assert await details_shown(customer, details) == {
        "kind": "InsufficientFunds",
        "account_id": "a-1",
        "balance": "(hidden)",
        "held": "(hidden)",
        "count": "(hidden)",
        "final": True,
        "note": "the sender holds (hidden), not (hidden)",
    }
    back_end = context(Caller(Role.CLIENT, "client:0123456789ab"))
    assert await details_shown(back_end, details) == details
