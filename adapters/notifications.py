"""Wake-ups from PostgreSQL LISTEN/NOTIFY, so followers and consistency waits need not poll."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType

import psycopg
from psycopg.conninfo import make_conninfo

from adapters.database import libpq_url
from adapters.event_store import NOTIFY_CHANNEL

KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 15,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
"""TCP keepalives of a listening connection, which otherwise only ever reads: a peer that
vanished without closing it (a host lost, a network cut) is noticed within about half a
minute, and the listener connects again, instead of waiting forever for a notification."""


class EventNotifications:
    """A listening connection that reports when events were appended."""

    def __init__(self, database_url: str, channel: str = NOTIFY_CHANNEL) -> None:
        self._url = libpq_url(database_url)
        self._channel = channel
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None

    async def __aenter__(self) -> EventNotifications:
        self._conn = await psycopg.AsyncConnection.connect(
            make_conninfo(self._url, **KEEPALIVE), autocommit=True
        )
        await self._conn.execute(
            psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(self._channel))
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def payloads(self) -> AsyncIterator[str]:
        """Every notification's payload, as they come, until the connection fails."""
        if self._conn is None:
            raise RuntimeError("EventNotifications is not entered")
        async for notify in self._conn.notifies():
            yield notify.payload

    async def drain(self) -> None:
        """Forget the notifications received so far, without waiting for any.

        A reader that drains before it reads sees every commit those notified (a NOTIFY is
        delivered after its commit), so only a later notification can be of something new.
        """
        if self._conn is None:
            raise RuntimeError("EventNotifications is not entered")
        async for _ in self._conn.notifies(timeout=0):
            pass

    async def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` for the next notification; False when none came."""
        if self._conn is None:
            raise RuntimeError("EventNotifications is not entered")
        async for _ in self._conn.notifies(timeout=seconds, stop_after=1):
            return True
        return False
