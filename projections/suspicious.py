"""The suspicious-activity read model: every detection of a pattern, per user."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    RowMapping,
    Table,
    Text,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.event_store import RecordedEvent


def suspicious_table(name: str = "suspicious_activities") -> Table:
    """The detections table, or a same-shaped table a rebuild fills before swapping it in."""
    return Table(
        name,
        MetaData(),
        Column("id", Text, primary_key=True),
        Column("user_id", Text, nullable=False, index=True),
        Column("pattern", Text, nullable=False),
        Column("detected_at", DateTime(timezone=True), nullable=False),
        Column("event_count", Integer, nullable=False),
        Column("window_start", DateTime(timezone=True), nullable=False),
        Column("window_end", DateTime(timezone=True), nullable=False),
        Column("position", BigInteger, nullable=False),
    )


suspicious_activities = suspicious_table()


@dataclass(frozen=True)
class SuspiciousActivityView:
    """One detection as clients see it."""

    id: str
    user_id: str
    pattern: str
    detected_at: datetime
    event_count: int
    window_start: datetime
    window_end: datetime


class SuspiciousActivityProjection:
    """Keeps one row per SuspiciousUserActivity event."""

    name: str = "suspicious_activities"
    tables: tuple[str, ...] = ("suspicious_activities",)
    event_types: tuple[str, ...] = ("SuspiciousUserActivity",)

    def __init__(self, table: Table = suspicious_activities) -> None:
        self._table = table

    def writing_to(self, tables: dict[str, str]) -> SuspiciousActivityProjection:
        """The same projection writing into other tables (live name -> other name)."""
        return SuspiciousActivityProjection(suspicious_table(tables["suspicious_activities"]))

    async def apply(self, conn: AsyncConnection, event: RecordedEvent) -> None:
        """Insert the detection; a replayed event changes nothing."""
        await self.apply_batch(conn, [event])

    async def apply_batch(self, conn: AsyncConnection, events: Sequence[RecordedEvent]) -> None:
        """Insert every detection of the batch in one statement."""
        rows = [
            {
                "id": str(e.event_id),
                "user_id": e.data["user_id"],
                "pattern": e.data["pattern"],
                "detected_at": datetime.fromisoformat(e.data["detected_at"]),
                "event_count": e.data["event_count"],
                "window_start": datetime.fromisoformat(e.data["window_start"]),
                "window_end": datetime.fromisoformat(e.data["window_end"]),
                "position": e.position,
            }
            for e in events
        ]
        if rows:
            await conn.execute(insert(self._table).values(rows).on_conflict_do_nothing())


async def list_suspicious_activities(
    conn: AsyncConnection, user_id: str | None, after: str | None, limit: int
) -> list[SuspiciousActivityView]:
    """Detections in id order after a cursor, optionally of one user."""
    table = suspicious_activities
    query = select(table).order_by(table.c.id).limit(limit)
    if user_id is not None:
        query = query.where(table.c.user_id == user_id)
    if after is not None:
        query = query.where(table.c.id > after)
    return [_view(r._mapping) for r in (await conn.execute(query)).all()]


def _view(m: RowMapping) -> SuspiciousActivityView:
    return SuspiciousActivityView(
        id=m["id"],
        user_id=m["user_id"],
        pattern=m["pattern"],
        detected_at=m["detected_at"],
        event_count=m["event_count"],
        window_start=m["window_start"],
        window_end=m["window_end"],
    )
