"""The repository on Postgres: snapshot round trips and how many statements a load or change is.

How the repository decides on cached state is tested over the in-memory store in tests/unit.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, cast

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.database import create_engine
from adapters.event_store import PostgresEventStore
from adapters.snapshots import PostgresSnapshotStore
from domain.accounts import Account
from domain.aggregate_cache import AggregateCache
from domain.repository import EventIds, Repository
from domain.users import User, UserStatus


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine of these tests' own: they count the statements it runs, which on the
    session's shared engine would include anything else using it meanwhile."""
    own = create_engine(database_url, pool_size=5)
    yield own
    await own.dispose()


@pytest.fixture(scope="module")
async def store(engine: AsyncEngine) -> AsyncIterator[PostgresEventStore]:
    """A store on that engine, whose group counters count these tests' appends only."""
    own = PostgresEventStore(engine)
    yield own
    await own.close()


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
    user.register(f"{uuid.uuid4()}@example.com", "Snap")
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


async def test_load_many_equals_loading_each_aggregate_alone(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    repository = Repository(store, PostgresSnapshotStore(engine), snapshot_every={"User": 3})
    ids_ = []
    for changes in (0, 4, 7):
        user = User(f"user-{uuid.uuid4()}")
        user.register(f"{uuid.uuid4()}@example.com", "Many")
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
    """Every statement the engine runs from now on (the listener stays with the engine)."""
    seen: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    return seen


async def registered_user(repository: Repository) -> User:
    user = User(f"user-{uuid.uuid4()}")
    user.register(f"{uuid.uuid4()}@example.com", "Cached")
    await repository.save(user, ids(), {})
    return user


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


async def opened_account(repository: Repository, balance: str) -> Account:
    account = Account(f"account-{uuid.uuid4()}")
    account.open(f"user-{uuid.uuid4()}", "EUR", Decimal("1000.00"))
    account.deposit(Decimal(balance))
    await repository.save(account, ids(), {})
    return account


async def test_a_change_of_cached_aggregates_is_one_statement(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    repository = Repository(store, PostgresSnapshotStore(engine), cache=AggregateCache(100))
    account = await opened_account(repository, "10.00")

    statements = count_statements(engine)
    groups = store.appends.groups_flushed
    changed, result = await repository.change(
        [(Account, account.id)], lambda a: a.withdraw(Decimal("4.00"), "t-1"), ids(), {}
    )

    # No read through the engine; the append is one statement on the store's own connections.
    assert statements == []
    assert store.appends.groups_flushed == groups + 1
    assert result.versions == {account.id: 3}
    assert cast(Account, changed[0]).balance == Decimal("6.00")
