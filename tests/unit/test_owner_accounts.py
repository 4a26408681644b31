"""A user's `accounts` list answers at most as many accounts as the answer-cost estimate
counts it as; a user with more gets a typed error on that field, not a cut list."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from graphql import located_error

from api.context import OWNER_ACCOUNTS
from api.errors import TooManyAccounts
from api.safety import UNPAGED_ITEMS, unexpected
from api.users.types import owner_accounts
from domain.accounts import AccountStatus
from projections.accounts import AccountView


def views(count: int) -> list[AccountView]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        AccountView(f"a{i:04}", "u1", Decimal(0), "EUR", AccountStatus.OPEN, now, now, 1)
        for i in range(count)
    ]


def test_the_bound_is_what_the_answer_cost_counts_the_list_as() -> None:
    assert OWNER_ACCOUNTS == UNPAGED_ITEMS


@pytest.mark.parametrize("count", [0, 1, OWNER_ACCOUNTS])
def test_up_to_the_bound_every_account_is_answered(count: int) -> None:
    assert owner_accounts(views(count)) == views(count)


def test_one_past_the_bound_is_an_error_naming_the_paged_query() -> None:
    with pytest.raises(TooManyAccounts) as raised:
        owner_accounts(views(OWNER_ACCOUNTS + 1))
    assert raised.value.extensions == {"code": "TOO_MANY_ACCOUNTS", "limit": OWNER_ACCOUNTS}
    assert "accounts(ownerId:, first:, after:)" in raised.value.message


def test_the_error_reaches_the_client_unmasked() -> None:
    error = located_error(TooManyAccounts(OWNER_ACCOUNTS), None, ["user", "accounts"])
    assert not unexpected(error)
    assert error.extensions == {"code": "TOO_MANY_ACCOUNTS", "limit": OWNER_ACCOUNTS}
