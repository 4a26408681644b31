"""The users read model: one row per user, answering `user`, `userByEmail` and `users`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.database import driver_of, rows_by_id
from domain.event_store import RecordedEvent
from domain.users import UserStatus


def users_table(name: str = "users") -> Table:
    """The users table, or a same-shaped table a rebuild fills before swapping it in."""
    return Table(
        name,
        MetaData(),
        Column("id", Text, primary_key=True),
        # Unique on the write side (email claims); here an index, so a batch may move an
        # address from one user to another in any order.
        Column("email", Text, nullable=False, index=True),
        Column("name", Text, nullable=False),
        Column("status", Text, nullable=False),
        Column("registered_at", DateTime(timezone=True), nullable=False),
        Column("last_updated", DateTime(timezone=True), nullable=False),
        Column("version", Integer, nullable=False),
        # The version of the user's last UserLocked (0: never): sessions issued before it
        # are revoked, even after an unlock.
        Column("locked_version", Integer, nullable=False, server_default="0"),
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
    locked_version: int = 0


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
        # Quoted for SQL, and `%` doubled: the statements are psycopg's, with placeholders.
        quoted = '"' + table.name.replace('"', '""').replace("%", "%%") + '"'
        self._insert = _insert_rows(quoted)
        self._update = _update_rows(quoted)

    def writing_to(self, tables: dict[str, str]) -> UsersProjection:
        """The same projection writing into other tables (live name -> other name)."""
        return UsersProjection(users_table(tables["users"]))

    async def apply(self, conn: AsyncConnection, event: RecordedEvent) -> None:
        """Update the user's row for one event; replaying an event changes nothing."""
        await self.apply_batch(conn, [event])

    async def apply_batch(self, conn: AsyncConnection, events: Sequence[RecordedEvent]) -> None:
        """Apply a batch with one INSERT and one UPDATE, whatever its size.

        Events are folded per user first: a user registered in this batch is inserted in its
        final state; other users get their final changes. The version guard makes every
        statement a no-op for events already applied.
        """
        # Each user's folded row, laid out as _COLUMNS; in `changes`, None is "not changed".
        new_rows: dict[str, list[Any]] = {}
        changes: dict[str, list[Any]] = {}
        for event in events:
            stream_id, version, at = event.stream_id, event.version, event.recorded_at
            if event.type == "UserRegistered":
                data = event.data
                new_rows[stream_id] = [
                    stream_id, data["email"], data["name"], _ACTIVE, at, at, version, 0,
                ]  # fmt: skip
                continue
            row = new_rows.get(stream_id)
            if row is None:
                row = changes.get(stream_id)
                if row is None:
                    row = changes[stream_id] = [stream_id] + [None] * (len(_COLUMNS) - 1)
            row[_LAST_UPDATED], row[_VERSION] = at, version
            if event.type == "UserEmailChanged":
                row[_EMAIL] = event.data["new_email"]
            elif event.type == "UserLocked":
                row[_STATUS], row[_LOCKED_VERSION] = _LOCKED, version
            elif event.type == "UserUnlocked":
                row[_STATUS] = _ACTIVE
        if not new_rows and not changes:
            return
        # On the driver, with binary arrays: SQLAlchemy's execute path and psycopg's text
        # arrays (escaped element by element) cost more than the statements themselves.
        driver = await driver_of(conn)
        if new_rows:
            columns = [list(column) for column in zip(*new_rows.values(), strict=True)]
            await driver.execute(
                self._insert, dict(zip(_COLUMNS, columns, strict=True)), prepare=True
            )
        if changes:
            columns = [list(column) for column in zip(*changes.values(), strict=True)]
            params = {name: columns[_COLUMNS.index(name)] for name in ("id", *_CHANGED)}
            await driver.execute(self._update, params, prepare=True)


# A batch's rows go as one array per column, so each statement is the same text (prepared
# once, planned once) whatever the batch size, and binding is per column, not per value.
_COLUMNS = (
    "id", "email", "name", "status", "registered_at", "last_updated", "version", "locked_version"
)  # fmt: skip
_TYPES = {
    "id": "text", "email": "text", "name": "text", "status": "text",
    "registered_at": "timestamptz", "last_updated": "timestamptz",
    "version": "integer", "locked_version": "integer",
}  # fmt: skip
_CHANGED = ("email", "status", "locked_version", "last_updated", "version")
_EMAIL, _STATUS, _LAST_UPDATED, _VERSION, _LOCKED_VERSION = (
    _COLUMNS.index(c) for c in ("email", "status", "last_updated", "version", "locked_version")
)
# The statuses as the rows store them (an enum member's `.value` is a slow property).
_ACTIVE: str = UserStatus.ACTIVE.value
_LOCKED: str = UserStatus.LOCKED.value


def _unnest(columns: Sequence[str]) -> str:
    arrays = ", ".join(f"CAST(%({c})b AS {_TYPES[c]}[])" for c in columns)
    return f"unnest({arrays}) AS batch({', '.join(columns)})"


def _insert_rows(table: str) -> str:
    """Insert users registered in the batch; an older existing row takes the newer state."""
    columns = ", ".join(_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "id")
    return (
        f"INSERT INTO {table} AS u ({columns}) SELECT {columns} FROM {_unnest(_COLUMNS)}"
        f" ON CONFLICT (id) DO UPDATE SET {updates} WHERE u.version < excluded.version"
    )


def _update_rows(table: str) -> str:
    """Apply other users' folded changes; a NULL column is one the batch did not change."""
    return (
        f"UPDATE {table} AS u SET email = coalesce(batch.email, u.email),"
        " status = coalesce(batch.status, u.status),"
        " locked_version = coalesce(batch.locked_version, u.locked_version),"
        " last_updated = batch.last_updated, version = batch.version"
        f" FROM {_unnest(('id', *_CHANGED))}"
        " WHERE u.id = batch.id AND u.version < batch.version"
    )


async def get_user(conn: AsyncConnection, user_id: str) -> UserView | None:
    """One user by id."""
    row = (await conn.execute(select(users).where(users.c.id == user_id))).one_or_none()
    return None if row is None else _view(row._mapping)


# The read behind every customer request's admission, sent on a `ReadPool`'s psycopg
# connection as a prepared statement.
_USERS_WHERE_ID = (
    "SELECT id, email, name, status, registered_at, last_updated, version, locked_version"
    " FROM users WHERE id"
)


async def read_users(
    conn: psycopg.AsyncConnection[Any], user_ids: list[str]
) -> dict[str, UserView]:
    """Users by id, on a `ReadPool`'s psycopg connection, as a prepared statement."""
    rows = await rows_by_id(conn, _USERS_WHERE_ID, user_ids)
    return {row["id"]: _view(row) for row in rows}


async def users_by_ids(conn: AsyncConnection, user_ids: Sequence[str]) -> dict[str, UserView]:
    """Users by id, in one query."""
    rows = (await conn.execute(select(users).where(users.c.id.in_(user_ids)))).all()
    return {r.id: _view(r._mapping) for r in rows}


async def get_user_by_email(conn: AsyncConnection, email: str) -> UserView | None:
    """One user by email address."""
    query = select(users).where(users.c.email == email).order_by(users.c.last_updated.desc())
    row = (await conn.execute(query.limit(1))).one_or_none()
    return None if row is None else _view(row._mapping)


async def list_users(conn: AsyncConnection, after: str | None, limit: int) -> list[UserView]:
    """Users in id order after a cursor (keyset pagination)."""
    query = select(users).order_by(users.c.id).limit(limit)
    if after is not None:
        query = query.where(users.c.id > after)
    return [_view(r._mapping) for r in (await conn.execute(query)).all()]


def _view(m: Mapping[Any, Any]) -> UserView:
    return UserView(
        id=m["id"],
        email=m["email"],
        name=m["name"],
        status=UserStatus(m["status"]),
        registered_at=m["registered_at"],
        last_updated=m["last_updated"],
        version=m["version"],
        locked_version=m["locked_version"],
    )
