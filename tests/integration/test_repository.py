"""Aggregates loaded from snapshots equal aggregates replayed from every event."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar, cast

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.event_store import PostgresEventStore
from adapters.snapshots import PostgresSnapshotStore
from domain.accounts import Account, InsufficientFunds
from domain.aggregate import Aggregate
from domain.aggregate_cache import AggregateCache
from domain.event_store import AppendResult, WrongExpectedVersion
from domain.repository import EventIds, Repository, retry_on_conflict
from domain.users import User, UserLockedError, UserStatus

A = TypeVar("A", bound=Aggregate)


def ids() -> EventIds:
    prefix = uuid.uuid4()
    return lambda index: uuid.uuid5(prefix, str(index))


async def test_snapshot_and_full_replay_load_the_same_user(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    snapshots = PostgresSnapshotStore(engine)
    with_snapshots = Repository(store, snapshots, snapshot_every={"User": 10})
    without = Repository(store)
    user_id = f"user-{uuid.uuid4()}"
    user = User(user_id)
    user.register(f"{uuid.uuid4()}@example.com", "Snap", "hash")
    await with_snapshots.save(user, ids(), {})
    for n in range(34):
        user = await with_snapshots.load(User, user_id)
        user.change_email(f"{n}-{uuid.uuid4()}@example.com")
        await with_snapshots.save(user, ids(), {})

    snapshot = (await snapshots.load_many([user_id])).get(user_id)
    assert snapshot is not None and snapshot.version == 30
    from_snapshot = await with_snapshots.load(User, user_id)
    replayed = await without.load(User, user_id)
    assert from_snapshot.version == replayed.version == 35
    assert vars(from_snapshot) == vars(replayed)
    assert replayed.status is UserStatus.ACTIVE


async def test_retry_on_conflict_reloads_and_wins_after_a_concurrent_change(
    store: PostgresEventStore,
) -> None:
    repository = Repository(store)
    user_id = f"user-{uuid.uuid4()}"
    user = User(user_id)
    user.register(f"{uuid.uuid4()}@example.com", "Race", "hash")
    await repository.save(user, ids(), {})
    attempts = 0

    async def change_email() -> int:
        nonlocal attempts
        attempts += 1
        mine = await repository.load(User, user_id)
        if attempts == 1:
            theirs = await repository.load(User, user_id)
            theirs.change_email(f"theirs-{uuid.uuid4()}@example.com")
            await repository.save(theirs, ids(), {})
        mine.change_email(f"mine-{uuid.uuid4()}@example.com")
        return (await repository.save(mine, ids(), {})).versions[user_id]

    assert await retry_on_conflict(change_email) == 3
    assert attempts == 2
    final = await repository.load(User, user_id)
    assert final.email.startswith("mine-")


async def test_retry_on_conflict_gives_up_after_its_attempts(store: PostgresEventStore) -> None:
    async def always_conflicts() -> None:
        raise WrongExpectedVersion("s", 1, 2)

    with pytest.raises(WrongExpectedVersion):
        await retry_on_conflict(always_conflicts, attempts=3)


async def test_load_many_equals_loading_each_aggregate_alone(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    repository = Repository(store, PostgresSnapshotStore(engine), snapshot_every={"User": 3})
    ids_ = []
    for changes in (0, 4, 7):
        user = User(f"user-{uuid.uuid4()}")
        user.register(f"{uuid.uuid4()}@example.com", "Many", "hash")
        await repository.save(user, ids(), {})
        for _ in range(changes):
            user.change_email(f"{uuid.uuid4()}@example.com")
            await repository.save(user, ids(), {})
        ids_.append(user.id)
    missing = f"user-{uuid.uuid4()}"

    together = await repository.load_many([(User, i) for i in [*ids_, missing]])
    alone = [await Repository(store).load(User, i) for i in [*ids_, missing]]

    assert [vars(a) for a in together] == [vars(a) for a in alone]
    assert [a.version for a in together] == [1, 5, 8, 0]


def count_statements(engine: AsyncEngine) -> list[str]:
    """Every statement the engine runs from now on (the listener stays for the session)."""
    seen: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    return seen


async def registered_user(repository: Repository) -> User:
    user = User(f"user-{uuid.uuid4()}")
    user.register(f"{uuid.uuid4()}@example.com", "Cached", "hash")
    await repository.save(user, ids(), {})
    return user


async def test_a_cached_aggregate_still_sees_what_another_worker_appended(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    cached = Repository(store, PostgresSnapshotStore(engine), cache=AggregateCache(100))
    other_worker = Repository(store)
    user = await registered_user(cached)
    assert (await cached.load(User, user.id)).version == 1

    await change_elsewhere(
        other_worker, User, user.id, lambda a: a.change_email("changed-elsewhere@example.com")
    )

    mine = await cached.load(User, user.id)
    assert mine.version == 2 and mine.email == "changed-elsewhere@example.com"
    assert vars(mine) == vars(await other_worker.load(User, user.id))


async def test_a_cached_load_is_one_statement(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    snapshots = PostgresSnapshotStore(engine)
    cached = Repository(store, snapshots, cache=AggregateCache(100))
    user = await registered_user(cached)
    uncached = Repository(store, snapshots)

    statements = count_statements(engine)
    await uncached.load(User, user.id)
    cold = len(statements)
    statements.clear()
    await cached.load(User, user.id)

    assert cold == 2  # the snapshot, then the events after it
    assert len(statements) == 1  # only the events after the cached version


async def test_a_save_that_repeats_an_earlier_append_from_older_state_is_not_cached(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    """Attempt Y of a command loaded the user before someone else's change Z; attempt X of
    the same command (same event ids, same content) loaded after Z and appended first. Y's
    save then reports where X's events landed, but Y's state lacks Z."""
    cache = AggregateCache(100)
    repository = Repository(store, PostgresSnapshotStore(engine), cache=cache)
    user = await registered_user(repository)
    attempt_y = await repository.load(User, user.id)

    someone_else = await repository.load(User, user.id)
    someone_else.lock("locked meanwhile")
    await repository.save(someone_else, ids(), {})

    command_ids = ids()
    attempt_x = await repository.load(User, user.id)
    attempt_x.change_email("same-change@example.com")
    await repository.save(attempt_x, command_ids, {})
    attempt_y.change_email("same-change@example.com")
    result = await repository.save(attempt_y, command_ids, {})

    assert result.versions[user.id] == 3
    loaded = await repository.load(User, user.id)
    assert vars(loaded) == vars(await Repository(store).load(User, user.id))
    assert loaded.status is UserStatus.LOCKED


async def opened_account(repository: Repository, balance: str) -> Account:
    account = Account(f"account-{uuid.uuid4()}")
    account.open(f"user-{uuid.uuid4()}", "EUR", Decimal("1000.00"))
    account.deposit(Decimal(balance))
    await repository.save(account, ids(), {})
    return account


async def change_elsewhere(
    other_worker: Repository, cls: type[A], aggregate_id: str, change: Callable[[A], object]
) -> None:
    """What another worker, which shares no cache, changes meanwhile."""
    theirs = await other_worker.load(cls, aggregate_id)
    change(theirs)
    await other_worker.save(theirs, ids(), {})


async def change_account(
    repository: Repository, account_id: str, decide: Callable[[Account], object]
) -> tuple[Account, AppendResult]:
    changed, result = await repository.change([(Account, account_id)], decide, ids(), {})
    return cast(Account, changed[0]), result


def cached_repositories(
    engine: AsyncEngine, store: PostgresEventStore
) -> tuple[Repository, Repository]:
    """A worker's repository with its cache, and another worker's repository without one."""
    cached = Repository(store, PostgresSnapshotStore(engine), cache=AggregateCache(100))
    return cached, Repository(store)


async def test_a_change_of_cached_aggregates_appends_without_reading(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    repository, _ = cached_repositories(engine, store)
    account = await opened_account(repository, "10.00")

    statements = count_statements(engine)
    account_now, result = await change_account(
        repository, account.id, lambda a: a.withdraw(Decimal("4.00"), "t-1")
    )

    assert [s.split("(")[0] for s in statements] == [
        "SELECT stream_version, last_position FROM sagaline_append"
    ]
    assert result.versions == {account.id: 3} and account_now.balance == Decimal("6.00")


async def test_a_change_on_stale_cached_state_is_made_again_on_the_stored_state(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    repository, other_worker = cached_repositories(engine, store)
    account = await opened_account(repository, "10.00")
    await change_elsewhere(
        other_worker, Account, account.id, lambda a: a.withdraw(Decimal("7.00"), "t-elsewhere")
    )

    account_now, result = await change_account(
        repository, account.id, lambda a: a.withdraw(Decimal("2.00"), "t-here")
    )

    assert result.versions == {account.id: 4}
    stored = await other_worker.load(Account, account.id)
    assert stored.balance == account_now.balance == Decimal("1.00")
    assert vars(await repository.load(Account, account.id)) == vars(stored)


async def test_a_rejection_on_stale_cached_state_is_not_believed(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    repository, other_worker = cached_repositories(engine, store)
    account = await opened_account(repository, "1.00")
    await change_elsewhere(other_worker, Account, account.id, lambda a: a.deposit(Decimal("50.00")))

    account_now, _ = await change_account(
        repository, account.id, lambda a: a.withdraw(Decimal("20.00"), "t-1")
    )
    assert account_now.balance == Decimal("31.00")

    with pytest.raises(InsufficientFunds):
        await change_account(repository, account.id, lambda a: a.withdraw(Decimal("99.00"), "t-2"))


async def test_an_aggregate_a_change_only_reads_is_checked_for_newer_events(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    repository, other_worker = cached_repositories(engine, store)
    owner = await registered_user(repository)
    account = await opened_account(repository, "10.00")
    await change_elsewhere(
        other_worker, User, owner.id, lambda a: a.lock("locked by another worker")
    )

    def deposit_if_active(account: Account, user: User) -> None:
        user.require_active()
        account.deposit(Decimal("5.00"))

    with pytest.raises(UserLockedError):
        await repository.change(
            [(Account, account.id), (User, owner.id)], deposit_if_active, ids(), {}
        )
    assert (await other_worker.load(Account, account.id)).version == 2


async def test_nothing_to_do_on_stale_cached_state_is_not_believed(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    repository, other_worker = cached_repositories(engine, store)
    account = await opened_account(repository, "10.00")
    day = "2026-11-28"
    await change_elsewhere(
        other_worker, Account, account.id, lambda a: a.reserve("t-1", Decimal("3.00"), day)
    )

    account_now, result = await change_account(repository, account.id, lambda a: a.release("t-1"))

    assert result.position > 0 and account_now.reserved_on(day) == 0
    assert (await other_worker.load(Account, account.id)).reserved_on(day) == 0
