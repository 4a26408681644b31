"""The users read model follows user events exactly once, in order."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.event_store import PostgresEventStore
from domain.event_store import NO_STREAM, NewEvent, StreamAppend
from domain.events import to_data
from domain.users import UserEmailChanged, UserLocked, UserRegistered, UserStatus
from projections.projector import Projector
from projections.users import UsersProjection, get_user, get_user_by_email


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
    await store.append(StreamAppend(user_id, [as_new(e) for e in events], NO_STREAM))
    projector = Projector(engine, store, UsersProjection())

    while await projector.run_batch():
        pass
    assert await projector.run_batch() == 0

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
