"""Exactly-once effects for at-least-once consumers: a processed-id table per handler.

The handler records the message id in the same transaction as its effect; a redelivered
message finds its id already there and does nothing.
"""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.schema import processed_messages


async def first_delivery(conn: AsyncConnection, handler: str, message_id: str) -> bool:
    """Claim a message for a handler inside the caller's transaction; False if seen before."""
    result = await conn.execute(
        insert(processed_messages)
        .values(handler=handler, message_id=message_id)
        .on_conflict_do_nothing()
        .returning(processed_messages.c.message_id)
    )
    return result.first() is not None
