"""Password hashes in PostgreSQL, written in the transaction of the event that set them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.event_store import PostgresEventStore
from adapters.schema import held_credentials, user_credentials
from domain.credentials import NoHeldCredential, PasswordCredential
from domain.event_store import AppendResult, StreamAppend

HELD_FOR = timedelta(days=1)
"""How long a held credential whose command never ran (or never answered) is kept."""


class PostgresCredentials:
    """The `user_credentials` table, beside the event store it is written with."""

    def __init__(self, engine: AsyncEngine, store: PostgresEventStore) -> None:
        self._engine = engine
        self._store = store

    async def hold(self, command_id: str, credential: PasswordCredential) -> str | None:
        """Keep the credential until the command appends with it, unless the command has
        one (held, or set by its append): then answer that one's hash and change nothing."""
        async with self._engine.begin() as conn:
            return await hold_credential(conn, command_id, credential)

    async def append_with(self, command_id: str, *streams: StreamAppend) -> AppendResult:
        """Append the streams and set the credential held for the command, atomically.

        The hash moves from `held_credentials` to `user_credentials` inside the database: it
        is in no statement's parameters, so no error this raises can carry it.
        """

        async def write(conn: AsyncConnection) -> None:
            held = (
                delete(held_credentials)
                .where(held_credentials.c.command_id == command_id)
                .returning(held_credentials.c.user_id, held_credentials.c.password_hash)
                .cte("held")
            )
            statement = insert(user_credentials).from_select(
                ["user_id", "password_hash"], select(held.c.user_id, held.c.password_hash)
            )
            moved = await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[user_credentials.c.user_id],
                    set_={
                        "password_hash": statement.excluded.password_hash,
                        "updated_at": func.now(),
                    },
                ).returning(user_credentials.c.user_id)
            )
            if moved.first() is None:
                raise NoHeldCredential(command_id)

        return await self._store.append_with(write, *streams)

    async def discard(self, command_id: str) -> None:
        """Forget the credential held for a command that will not append (no-op if none)."""
        async with self._engine.begin() as conn:
            await discard_held_credential(conn, command_id)

    async def password_hash(self, user_id: str) -> str | None:
        """The user's password hash, or None if none was set."""
        async with self._engine.connect() as conn:
            return await password_hash_of(conn, user_id)


async def hold_credential(
    conn: AsyncConnection, command_id: str, credential: PasswordCredential
) -> str | None:
    """Hold the credential for the command on the caller's transaction, unless the command
    has one already; drop stale ones.

    The first credential held for a command is the one it sets: another one sent under the
    same id changes nothing. Answers None if this credential is now held, else the hash the
    command already has, held or (its command having appended) set for the user.
    """
    await conn.execute(
        delete(held_credentials).where(held_credentials.c.held_at < func.now() - HELD_FOR)
    )
    statement = insert(held_credentials).values(
        command_id=command_id,
        user_id=credential.user_id,
        password_hash=credential.password_hash,
    )
    # An update that changes nothing (rather than DO NOTHING) returns the row already held,
    # and waits for a transaction moving or dropping it.
    held = await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[held_credentials.c.command_id],
            set_={"user_id": held_credentials.c.user_id},
        ).returning(held_credentials.c.password_hash, text("xmax = 0"))
    )
    password_hash, inserted = held.one()
    if not inserted:
        return str(password_hash)
    set_before = await password_hash_of(conn, credential.user_id)
    if set_before is not None:
        await discard_held_credential(conn, command_id)
    return set_before


async def discard_held_credential(conn: AsyncConnection, command_id: str) -> None:
    """Forget the credential held for the command, on the caller's transaction."""
    await conn.execute(delete(held_credentials).where(held_credentials.c.command_id == command_id))


async def password_hash_of(conn: AsyncConnection, user_id: str) -> str | None:
    """The user's password hash read on the caller's connection, or None."""
    query = select(user_credentials.c.password_hash).where(user_credentials.c.user_id == user_id)
    hashed: str | None = (await conn.execute(query)).scalar_one_or_none()
    return hashed
