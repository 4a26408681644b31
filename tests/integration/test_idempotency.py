"""A redelivered message has its effect once, even when deliveries race."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import Column, Integer, MetaData, Table, Text, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.idempotency import first_delivery


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
