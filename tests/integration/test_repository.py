"""Aggregates loaded from snapshots equal aggregates replayed from every event."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.event_store import PostgresEventStore
from adapters.snapshots import PostgresSnapshotStore
from domain.event_store import WrongExpectedVersion
from domain.repository import EventIds, Repository, retry_on_conflict
from domain.users import User, UserStatus


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

    snapshot = await snapshots.load(user_id)
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
