"""Password hashes in PostgreSQL, written in the transaction of the event that set them."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.event_store import PostgresEventStore
from adapters.schema import user_credentials
from domain.credentials import PasswordCredential
from domain.event_store import AppendResult, StreamAppend


class PostgresCredentials:
    """The `user_credentials` table, beside the event store it is written with."""

    def __init__(self, engine: AsyncEngine, store: PostgresEventStore) -> None:
        self._engine = engine
        self._store = store

    async def append_with(
        self, credential: PasswordCredential, *streams: StreamAppend
    ) -> AppendResult:
        """Append the streams and set the credential atomically, idempotent by event id."""

        async def write(conn: AsyncConnection) -> None:
            statement = insert(user_credentials).values(
                user_id=credential.user_id, password_hash=credential.password_hash
            )
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[user_credentials.c.user_id],
                    set_={
                        "password_hash": statement.excluded.password_hash,
                        "updated_at": func.now(),
                    },
                )
            )

        return await self._store.append_with(write, *streams)

    async def password_hash(self, user_id: str) -> str | None:
        """The user's password hash, or None if none was set."""
        async with self._engine.connect() as conn:
            return await password_hash_of(conn, user_id)


async def password_hash_of(conn: AsyncConnection, user_id: str) -> str | None:
    """The user's password hash read on the caller's connection, or None."""
    query = select(user_credentials.c.password_hash).where(user_credentials.c.user_id == user_id)
    hashed: str | None = (await conn.execute(query)).scalar_one_or_none()
    return hashed
