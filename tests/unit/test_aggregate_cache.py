"""The aggregate cache hands out copies of saved state, never shared or unsaved objects."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.accounts import Account
from domain.aggregate import Aggregate
from domain.aggregate_cache import AggregateCache
from domain.events import DomainEvent
from domain.transfers import Transfer, TransferStep
from domain.users import User


def saved_account(account_id: str = "account-1", version: int = 3) -> Account:
    account = Account(account_id)
    account.open("owner-1", "EUR", Decimal("500.00"))
    account.deposit(Decimal("100.00"))
    account.withdraw(Decimal("30.00"), "transfer-1")
    account.pending.clear()
    account.version = version
    return account


def test_a_cached_aggregate_comes_back_equal_but_never_the_same_object() -> None:
    cache = AggregateCache(10)
    account = saved_account()
    cache.put(account)

    first = cache.get(Account, account.id)
    second = cache.get(Account, account.id)

    assert first is not None and second is not None
    assert vars(first) == vars(account) == vars(second)
    assert first is not account and first is not second
    first.deposit(Decimal("1.00"), "transfer-2")
    first.reserve("transfer-3", Decimal("5.00"), "2026-11-28")
    again = cache.get(Account, account.id)
    assert again is not None and vars(again) == vars(account)


def test_a_transfers_lists_are_not_shared_with_the_cache() -> None:
    cache = AggregateCache(10)
    transfer = Transfer("transfer-1")
    transfer.request("a", "b", Decimal("1.00"))
    transfer.step_completed(TransferStep.WITHDRAW)
    transfer.pending.clear()
    transfer.version = 2
    cache.put(transfer)
    transfer.steps.append("mutated after it was cached")

    cached = cache.get(Transfer, "transfer-1")
    assert cached is not None and cached.steps == [TransferStep.WITHDRAW.value]


def test_unsaved_events_keep_an_aggregate_out() -> None:
    cache = AggregateCache(10)
    account = saved_account()
    account.deposit(Decimal("5.00"))
    cache.put(account)
    assert cache.get(Account, account.id) is None


def test_an_older_version_never_replaces_a_newer_one() -> None:
    cache = AggregateCache(10)
    newer = saved_account(version=5)
    older = Account(newer.id)
    older.open("owner-1", "EUR", Decimal("500.00"))
    older.pending.clear()
    older.version = 1
    cache.put(newer)
    cache.put(older)

    cached = cache.get(Account, newer.id)
    assert cached is not None and cached.version == 5 and cached.balance == Decimal("70.00")


def test_the_least_recently_used_aggregate_is_evicted_first() -> None:
    cache = AggregateCache(2)
    for name in ("a", "b"):
        cache.put(saved_account(name))
    assert cache.get(Account, "a") is not None
    cache.put(saved_account("c"))

    assert len(cache) == 2
    assert cache.get(Account, "b") is None
    assert cache.get(Account, "a") is not None and cache.get(Account, "c") is not None


def test_another_type_or_snapshot_schema_under_the_same_id_is_a_miss(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = AggregateCache(10)
    cache.put(saved_account("shared-id"))
    assert cache.get(User, "shared-id") is None
    monkeypatch.setattr(Account, "snapshot_schema", Account.snapshot_schema + 1)
    assert cache.get(Account, "shared-id") is None


class Counter(Aggregate):
    """An aggregate without snapshot support."""

    def apply(self, event: DomainEvent) -> None:
        pass


def test_aggregates_without_snapshot_state_are_not_cached() -> None:
    cache = AggregateCache(10)
    counter = Counter("counter-1")
    counter.version = 4
    cache.put(counter)
    assert len(cache) == 0 and cache.get(Counter, "counter-1") is None


def test_a_cache_holds_at_least_one_aggregate() -> None:
    with pytest.raises(ValueError):
        AggregateCache(0)
