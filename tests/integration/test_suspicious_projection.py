"""The suspicious-activity read model keeps one row per detection, per user."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.event_store import PostgresEventStore
from domain.event_store import ANY, NewEvent, StreamAppend
from domain.events import to_data, type_name
from domain.users import SuspiciousUserActivity, suspicious_activity_stream
from projections.suspicious import (
    SuspiciousActivityProjection,
    SuspiciousActivityView,
    list_suspicious_activities,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def detection(user_id: str, minutes: int) -> SuspiciousUserActivity:
    return SuspiciousUserActivity(
        user_id=user_id,
        detected_at=T0 + timedelta(minutes=minutes, seconds=30),
        event_count=3,
        window_start=T0 + timedelta(minutes=minutes - 4),
        window_end=T0 + timedelta(minutes=minutes),
        pattern="suspicious-logins",
        event_ids=(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())),
    )


async def test_each_detection_is_one_row_of_its_user_even_when_replayed(
    engine: AsyncEngine, store: PostgresEventStore
) -> None:
    user, other = f"user-{uuid.uuid4()}", f"user-{uuid.uuid4()}"
    found = [(user, detection(user, 4)), (other, detection(other, 5)), (user, detection(user, 9))]
    for user_id, event in found:
        new = NewEvent(uuid.uuid4(), type_name(event), to_data(event))
        await store.append(StreamAppend(suspicious_activity_stream(user_id), [new], ANY))
    mine = await store.read_stream(suspicious_activity_stream(user))
    theirs = await store.read_stream(suspicious_activity_stream(other))
    async with engine.begin() as conn:
        await SuspiciousActivityProjection().apply_batch(conn, [*mine, *theirs])
        await SuspiciousActivityProjection().apply(conn, mine[0])  # a redelivered event
        rows = await list_suspicious_activities(conn, user, None, 10)

    expected = [
        SuspiciousActivityView(
            id=str(recorded.event_id),
            user_id=user,
            pattern=event.pattern,
            detected_at=event.detected_at,
            event_count=event.event_count,
            window_start=event.window_start,
            window_end=event.window_end,
        )
        for recorded, event in zip(mine, [found[0][1], found[2][1]], strict=True)
    ]
    assert rows == sorted(expected, key=lambda view: view.id)
