"""Exactly-once effects for at-least-once consumers: a processed-id table per handler.

The handler records the message id in the same transaction as its effect; a redelivered
message finds its id already there and does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.database import driver_of
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


# Sent straight to the driver as prepared statements: they run once per consumer transaction.
# The ids go in binary (`%b`): psycopg writes a text array of thousands of ids several times
# faster than in its text form.
_CLAIM_MANY = (
    "INSERT INTO processed_messages (handler, message_id)"
    " SELECT %s, unnest(%b::text[]) ON CONFLICT DO NOTHING RETURNING message_id"
)
# When none of the ids is expected to be there: a plain insert, about a third cheaper per row
# than the speculative insertion of ON CONFLICT. Under a savepoint, so that a duplicate (a
# unique violation) undoes only this statement, and the ids are claimed one by one again.
_CLAIM_NEW = "INSERT INTO processed_messages (handler, message_id) SELECT %s, unnest(%b::text[])"
_SAVEPOINT = "SAVEPOINT claim_new"
_RELEASE = "RELEASE SAVEPOINT claim_new"
_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT claim_new"


async def first_deliveries(
    conn: AsyncConnection, handler: str, message_ids: Sequence[str], *, expect_new: bool = False
) -> set[str]:
    """Claim several messages in one statement inside the caller's transaction; the ids not
    seen before.

    With `expect_new` (the caller saw no redelivery lately) they are inserted as all new; if
    one was seen before, that insert is undone and they are claimed with ON CONFLICT as
    without it. Either way the same ids come back.
    """
    if not message_ids:
        return set()
    # In one order whatever order they were fetched in: two consumers of one handler claiming
    # the same ids (overlapping in a rebalance) then wait on each other's first shared id
    # instead of each holding one the other waits on, a deadlock.
    ids = sorted(set(message_ids))
    driver = await driver_of(conn)
    if expect_new:
        try:
            # One round trip with the transaction's BEGIN.
            async with driver.pipeline():
                await driver.execute(_SAVEPOINT)
                await driver.execute(_CLAIM_NEW, (handler, ids), prepare=True)
                await driver.execute(_RELEASE)
            return set(ids)
        except psycopg.errors.UniqueViolation:
            await driver.execute(_ROLLBACK_TO)
    # In a pipeline: the transaction's BEGIN goes in the same round trip.
    async with driver.pipeline():
        cursor = await driver.execute(_CLAIM_MANY, (handler, ids), prepare=True)
    return {row[0] for row in await cursor.fetchall()}
