"""The users read model: one row per user, answering `user`, `userByEmail` and `users`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, DateTime, Integer, MetaData, RowMapping, Table, Text, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.event_store import RecordedEvent
from domain.users import UserStatus


def users_table(name: str = "users") -> Table:
    """The users table, or a same-shaped table a rebuild fills before swapping it in."""
    return Table(
        name,
        MetaData(),
        Column("id", Text, primary_key=True),
        Column("email", Text, nullable=False, unique=True),
        Column("name", Text, nullable=False),
        Column("status", Text, nullable=False),
        Column("registered_at", DateTime(timezone=True), nullable=False),
        Column("last_updated", DateTime(timezone=True), nullable=False),
        Column("version", Integer, nullable=False),
    )


users = users_table()


@dataclass(frozen=True)
class UserView:
    """A user as clients see it."""

    id: str
    email: str
    name: str
    status: UserStatus
    registered_at: datetime
    last_updated: datetime
    version: int


class UsersProjection:
    """Keeps the `users` table in step with user events."""

    name: str = "users"
    tables: tuple[str, ...] = ("users",)
    event_types: tuple[str, ...] = (
        "UserRegistered",
        "UserEmailChanged",
        "UserLocked",
        "UserUnlocked",
    )

    def __init__(self, table: Table = users) -> None:
        self._table = table

    def writing_to(self, tables: dict[str, str]) -> UsersProjection:
        """The same projection writing into other tables (live name -> other name)."""
        return UsersProjection(users_table(tables["users"]))

    async def apply(self, conn: AsyncConnection, event: RecordedEvent) -> None:
        """Update the user's row for one event; replaying an event changes nothing."""
        data = event.data
        if event.type == "UserRegistered":
            await conn.execute(
                insert(self._table)
                .values(
                    id=event.stream_id,
                    email=data["email"],
                    name=data["name"],
                    status=UserStatus.ACTIVE.value,
                    registered_at=event.recorded_at,
                    last_updated=event.recorded_at,
                    version=event.version,
                )
                .on_conflict_do_nothing(index_elements=[self._table.c.id])
            )
            return
        changes: dict[str, object] = {}
        if event.type == "UserEmailChanged":
            changes["email"] = data["new_email"]
        elif event.type == "UserLocked":
            changes["status"] = UserStatus.LOCKED.value
        elif event.type == "UserUnlocked":
            changes["status"] = UserStatus.ACTIVE.value
        table = self._table
        await conn.execute(
            update(table)
            .where(table.c.id == event.stream_id, table.c.version < event.version)
            .values(**changes, last_updated=event.recorded_at, version=event.version)
        )


async def get_user(conn: AsyncConnection, user_id: str) -> UserView | None:
    """One user by id."""
    row = (await conn.execute(select(users).where(users.c.id == user_id))).one_or_none()
    return None if row is None else _view(row._mapping)


async def get_user_by_email(conn: AsyncConnection, email: str) -> UserView | None:
    """One user by email address."""
    row = (await conn.execute(select(users).where(users.c.email == email))).one_or_none()
    return None if row is None else _view(row._mapping)


def _view(m: RowMapping) -> UserView:
    return UserView(
        id=m["id"],
        email=m["email"],
        name=m["name"],
        status=UserStatus(m["status"]),
        registered_at=m["registered_at"],
        last_updated=m["last_updated"],
        version=m["version"],
    )
