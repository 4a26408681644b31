"""How the repository decides on cached state, and when it reads the store again.

Over the in-memory stores; `other_worker` is a repository sharing the store but no cache.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TypeVar, cast

import pytest

from adapters.memory_event_store import InMemoryEventStore, InMemorySnapshotStore
from domain.accounts import Account, InsufficientFunds
from domain.aggregate import Aggregate
from domain.aggregate_cache import AggregateCache
from domain.event_store import (
    AppendResult,
    RecordedEvent,
    Snapshot,
    StreamAppend,
    WrongExpectedVersion,
)
from domain.repository import EventIds, Repository, retry_on_conflict
from domain.users import User, UserLockedError, UserStatus

A = TypeVar("A", bound=Aggregate)


class RecordingStore(InMemoryEventStore):
    """The in-memory store, noting which calls reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, object]] = []

    async def append(self, *streams: StreamAppend) -> AppendResult:
        self.calls.append(("append", [s.stream_id for s in streams]))
        return await super().append(*streams)

    async def read_streams(
        self, from_versions: Mapping[str, int]
    ) -> dict[str, list[RecordedEvent]]:
        self.calls.append(("read_streams", dict(from_versions)))
        return await super().read_streams(from_versions)


class RecordingSnapshots(InMemorySnapshotStore):
    """The in-memory snapshot store, noting the loads that reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[list[str]] = []

    async def load_many(self, stream_ids: Sequence[str]) -> dict[str, Snapshot]:
        self.loads.append(list(stream_ids))
        return await super().load_many(stream_ids)


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
def snapshots() -> RecordingSnapshots:
    return RecordingSnapshots()


@pytest.fixture
def repository(store: RecordingStore, snapshots: RecordingSnapshots) -> Repository:
    """A worker's repository with its cache."""
    return Repository(store, snapshots, cache=AggregateCache(100))


@pytest.fixture
def other_worker(store: RecordingStore) -> Repository:
    """Another worker's repository on the same store, without a cache."""
    return Repository(store)


def ids() -> EventIds:
    prefix = uuid.uuid4()
    return lambda index: uuid.uuid5(prefix, str(index))


async def registered_user(repository: Repository) -> User:
    user = User(f"user-{uuid.uuid4()}")
    user.register(f"{uuid.uuid4()}@example.com", "Cached")
    await repository.save(user, ids(), {})
    return user


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


async def test_retry_on_conflict_reloads_and_wins_after_a_concurrent_change(
    other_worker: Repository,
) -> None:
    repository = other_worker
    user = await registered_user(repository)
    attempts = 0

    async def change_email() -> int:
        nonlocal attempts
        attempts += 1
        mine = await repository.load(User, user.id)
        if attempts == 1:
            theirs = await repository.load(User, user.id)
            theirs.change_email(f"theirs-{uuid.uuid4()}@example.com")
            await repository.save(theirs, ids(), {})
        mine.change_email(f"mine-{uuid.uuid4()}@example.com")
        return (await repository.save(mine, ids(), {})).versions[user.id]

    assert await retry_on_conflict(change_email) == 3
    assert attempts == 2
    final = await repository.load(User, user.id)
    assert final.email.startswith("mine-")


async def test_retry_on_conflict_gives_up_after_its_attempts() -> None:
    attempts = 0

    async def always_conflicts() -> None:
        nonlocal attempts
        attempts += 1
        raise WrongExpectedVersion("s", 1, 2)

    with pytest.raises(WrongExpectedVersion):
        await retry_on_conflict(always_conflicts, attempts=3)
    assert attempts == 3


async def test_a_cached_aggregate_still_sees_what_another_worker_appended(
    repository: Repository, other_worker: Repository
) -> None:
    user = await registered_user(repository)
    assert (await repository.load(User, user.id)).version == 1

    await change_elsewhere(
        other_worker, User, user.id, lambda a: a.change_email("changed-elsewhere@example.com")
    )

    mine = await repository.load(User, user.id)
    assert mine.version == 2 and mine.email == "changed-elsewhere@example.com"
    assert vars(mine) == vars(await other_worker.load(User, user.id))


async def test_a_cached_load_reads_no_snapshot_and_only_the_newer_events(
    store: RecordingStore, snapshots: RecordingSnapshots, repository: Repository
) -> None:
    user = await registered_user(repository)
    uncached = Repository(store, snapshots)

    store.calls.clear()
    await uncached.load(User, user.id)
    assert snapshots.loads == [[user.id]]
    assert store.calls == [("read_streams", {user.id: 1})]

    snapshots.loads.clear()
    store.calls.clear()
    await repository.load(User, user.id)
    assert snapshots.loads == []
    assert store.calls == [("read_streams", {user.id: 2})]


async def test_a_save_that_repeats_an_earlier_append_from_older_state_is_not_cached(
    repository: Repository, other_worker: Repository
) -> None:
    """Attempt Y of a command loaded the user before someone else's change Z; attempt X of
    the same command (same event ids, same content) loaded after Z and appended first. Y's
    save then reports where X's events landed, but Y's state lacks Z."""
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
    assert vars(loaded) == vars(await other_worker.load(User, user.id))
    assert loaded.status is UserStatus.LOCKED


async def test_a_change_of_cached_aggregates_appends_without_reading(
    store: RecordingStore, snapshots: RecordingSnapshots, repository: Repository
) -> None:
    account = await opened_account(repository, "10.00")
    store.calls.clear()

    account_now, result = await change_account(
        repository, account.id, lambda a: a.withdraw(Decimal("4.00"), "t-1")
    )

    assert store.calls == [("append", [account.id])] and snapshots.loads == []
    assert result.versions == {account.id: 3} and account_now.balance == Decimal("6.00")


async def test_a_change_on_stale_cached_state_is_made_again_on_the_stored_state(
    repository: Repository, other_worker: Repository
) -> None:
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


async def test_a_change_another_worker_already_made_on_newer_state_is_made_again(
    repository: Repository, other_worker: Repository
) -> None:
    """The same command (same event ids) ran elsewhere after the reservation was taken
    again at another amount, so its release carries other content than the cached one."""
    account = await opened_account(repository, "10.00")
    day = "2026-11-28"
    await change_elsewhere(
        repository, Account, account.id, lambda a: a.reserve("t-1", Decimal("3.00"), day)
    )
    await change_elsewhere(other_worker, Account, account.id, lambda a: a.release("t-1"))
    await change_elsewhere(
        other_worker, Account, account.id, lambda a: a.reserve("t-1", Decimal("4.00"), day)
    )
    command_ids = ids()
    theirs = await other_worker.load(Account, account.id)
    theirs.release("t-1")
    await other_worker.save(theirs, command_ids, {})

    changed, result = await repository.change(
        [(Account, account.id)], lambda a: a.release("t-1"), command_ids, {}
    )

    assert result.versions == {account.id: 6}
    assert cast(Account, changed[0]).reserved_on(day) == 0
    assert vars(await repository.load(Account, account.id)) == vars(
        await other_worker.load(Account, account.id)
    )


async def test_a_rejection_on_stale_cached_state_is_not_believed(
    repository: Repository, other_worker: Repository
) -> None:
    account = await opened_account(repository, "1.00")
    await change_elsewhere(other_worker, Account, account.id, lambda a: a.deposit(Decimal("50.00")))

    account_now, _ = await change_account(
        repository, account.id, lambda a: a.withdraw(Decimal("20.00"), "t-1")
    )
    assert account_now.balance == Decimal("31.00")

    with pytest.raises(InsufficientFunds):
        await change_account(repository, account.id, lambda a: a.withdraw(Decimal("99.00"), "t-2"))


async def test_an_aggregate_a_change_only_reads_is_checked_for_newer_events(
    repository: Repository, other_worker: Repository
) -> None:
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
    repository: Repository, other_worker: Repository
) -> None:
    account = await opened_account(repository, "10.00")
    day = "2026-11-28"
    await change_elsewhere(
        other_worker, Account, account.id, lambda a: a.reserve("t-1", Decimal("3.00"), day)
    )

    account_now, result = await change_account(repository, account.id, lambda a: a.release("t-1"))

    assert result.position > 0 and account_now.reserved_on(day) == 0
    assert (await other_worker.load(Account, account.id)).reserved_on(day) == 0
