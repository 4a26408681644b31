"""The users read model follows user events exactly once, in order."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.event_store import PostgresEventStore
from domain.event_store import NO_STREAM, NewEvent, StreamAppend
from domain.events import to_data
from domain.users import UserEmailChanged, UserLocked, UserRegistered, UserStatus, UserUnlocked
from projections.projector import Projector
from projections.users import UsersProjection, get_user, get_user_by_email
from tests.projecting import project_through


def as_new(event: object) -> NewEvent:
    return NewEvent(uuid.uuid4(), type(event).__name__, to_data(event))  # type: ignore[arg-type]


async def test_users_projection_reflects_registration_email_change_and_lock(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    user_id = f"user-{uuid.uuid4()}"
    old, new = f"{uuid.uuid4()}@example.com", f"{uuid.uuid4()}@example.com"
    events = [
        UserRegistered(user_id, old, "Ann"),
        UserEmailChanged(user_id, old, new),
        UserLocked(user_id, "suspicious activity"),
    ]
    appended = await store.append(StreamAppend(user_id, [as_new(e) for e in events], NO_STREAM))
    projector = Projector(engine, store, UsersProjection())

    await project_through(engine, projector, appended.position)

    async with engine.connect() as conn:
        view = await get_user(conn, user_id)
        by_new_email = await get_user_by_email(conn, new)
        by_old_email = await get_user_by_email(conn, old)
    assert view is not None
    assert (view.email, view.name, view.status, view.version) == (new, "Ann", UserStatus.LOCKED, 3)
    assert by_new_email == view
    assert by_old_email is None


async def test_a_batch_replayed_over_an_older_row_still_applies_its_newer_events(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    user_id = f"user-{uuid.uuid4()}"
    old, new = f"{uuid.uuid4()}@example.com", f"{uuid.uuid4()}@example.com"
    await store.append(
        StreamAppend(
            user_id,
            [
                as_new(UserRegistered(user_id, old, "Ann")),
                as_new(UserEmailChanged(user_id, old, new)),
            ],
            NO_STREAM,
        )
    )
    registered, changed = await store.read_stream(user_id)
    projection = UsersProjection()
    async with engine.begin() as conn:
        await projection.apply_batch(conn, [registered])
        await projection.apply_batch(conn, [registered, changed])
        await projection.apply_batch(conn, [registered])
        view = await get_user(conn, user_id)
    assert view is not None
    assert (view.email, view.version) == (new, 2)


async def test_one_batch_folds_new_and_existing_users_to_their_final_rows(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    known, locked, fresh = (f"user-{uuid.uuid4()}" for _ in range(3))
    emails = {user: f"{uuid.uuid4()}@example.com" for user in (known, locked, fresh)}
    moved = f"{uuid.uuid4()}@example.com"
    for user in (known, locked):
        await store.append(
            StreamAppend(user, [as_new(UserRegistered(user, emails[user], "Old"))], NO_STREAM)
        )
    before = [e for user in (known, locked) for e in await store.read_stream(user)]
    await store.append(
        StreamAppend(known, [as_new(UserEmailChanged(known, emails[known], moved))], 1),
        StreamAppend(
            locked,
            [as_new(UserLocked(locked, "fraud")), as_new(UserUnlocked(locked)),
             as_new(UserLocked(locked, "again"))],
            1,
        ),
        StreamAppend(
            fresh,
            [as_new(UserRegistered(fresh, emails[fresh], "New")),
             as_new(UserLocked(fresh, "fraud")), as_new(UserUnlocked(fresh))],
            NO_STREAM,
        ),
    )  # fmt: skip
    batch = [e for user in (known, locked, fresh) for e in await store.read_stream(user)]
    batch = sorted((e for e in batch if e not in before), key=lambda e: e.position)
    projection = UsersProjection()
    async with engine.begin() as conn:
        await projection.apply_batch(conn, before)
        await projection.apply_batch(conn, batch)
        views = {user: await get_user(conn, user) for user in (known, locked, fresh)}

    rows = {
        user: (v.email, v.name, v.status, v.version, v.locked_version)
        for user, v in views.items()
        if v is not None
    }
    assert rows == {
        known: (moved, "Old", UserStatus.ACTIVE, 2, 0),
        locked: (emails[locked], "Old", UserStatus.LOCKED, 4, 4),
        fresh: (emails[fresh], "New", UserStatus.ACTIVE, 3, 2),
    }
