"""Read models whose events are applied as prepared statements on the driver's connection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.database import driver_of
from domain.event_store import RecordedEvent

Statement = Callable[[RecordedEvent], tuple[str, dict[str, Any]]]
"""An event's statement (with psycopg placeholders) and its parameters."""


def quoted_table(name: str) -> str:
    """A table's name quoted for SQL, `%` doubled: the statements have placeholders."""
    return '"' + name.replace('"', '""').replace("%", "%%") + '"'


async def apply_prepared(
    conn: AsyncConnection, events: Sequence[RecordedEvent], statement: Statement
) -> None:
    """Apply events one by one, in order, each a prepared statement on the driver (in the
    caller's transaction): SQLAlchemy's execute path costs more than the statements."""
    driver = await driver_of(conn)
    for event in events:
        sql, params = statement(event)
        await driver.execute(sql, params, prepare=True)
