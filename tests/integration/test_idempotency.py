"""A redelivered message has its effect once, even when deliveries race."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import Column, Integer, MetaData, Table, Text, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.idempotency import first_deliveries, first_delivery


async def test_each_message_has_its_effect_once_under_concurrent_redelivery(
    engine: AsyncEngine,
) -> None:
    counter = Table(
        f"counter_{uuid.uuid4().hex[:12]}",
        MetaData(),
        Column("id", Text, primary_key=True),
        Column("n", Integer, nullable=False),
    )
    async with engine.begin() as conn:
        await conn.run_sync(counter.metadata.create_all)
        await conn.execute(counter.insert().values(id="total", n=0))
    handler = f"test-{uuid.uuid4()}"
    messages = [str(uuid.uuid4()) for _ in range(20)]

    async def deliver(message_id: str) -> None:
        async with engine.begin() as conn:
            if await first_delivery(conn, handler, message_id):
                await conn.execute(counter.update().values(n=counter.c.n + 1))

    await asyncio.gather(*(deliver(m) for m in messages * 3))

    async with engine.connect() as conn:
        total = (await conn.execute(select(counter.c.n))).scalar_one()
    assert total == 20


async def test_a_rolled_back_effect_leaves_the_message_unprocessed(engine: AsyncEngine) -> None:
    handler, message = f"test-{uuid.uuid4()}", str(uuid.uuid4())
    async with engine.connect() as conn:
        transaction = await conn.begin()
        assert await first_delivery(conn, handler, message)
        await transaction.rollback()
    async with engine.begin() as conn:
        assert await first_delivery(conn, handler, message)
        assert not await first_delivery(conn, handler, message)


async def test_claiming_as_new_ids_seen_before_gives_only_the_unseen_and_keeps_the_transaction(
    engine: AsyncEngine,
) -> None:
    handler = f"test-{uuid.uuid4()}"
    seen, unseen = str(uuid.uuid4()), [str(uuid.uuid4()) for _ in range(3)]
    async with engine.begin() as conn:
        assert await first_deliveries(conn, handler, [seen], expect_new=True) == {seen}
    async with engine.begin() as conn:
        fresh = await first_deliveries(
            conn, handler, [unseen[0], seen, *unseen[1:]], expect_new=True
        )
        assert fresh == set(unseen)
        # The transaction goes on after the undone insert: its claims hold.
        assert not await first_delivery(conn, handler, unseen[0])
    async with engine.begin() as conn:
        assert await first_deliveries(conn, handler, [seen, *unseen], expect_new=True) == set()
        assert await first_deliveries(conn, handler, [seen, *unseen]) == set()


async def test_a_rolled_back_claim_as_new_leaves_the_messages_unprocessed(
    engine: AsyncEngine,
) -> None:
    handler, messages = f"test-{uuid.uuid4()}", [str(uuid.uuid4()) for _ in range(2)]
    async with engine.connect() as conn:
        transaction = await conn.begin()
        assert await first_deliveries(conn, handler, messages, expect_new=True) == set(messages)
        await transaction.rollback()
    async with engine.begin() as conn:
        assert await first_deliveries(conn, handler, messages, expect_new=True) == set(messages)
