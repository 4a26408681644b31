"""A redelivered message has its effect once, even when deliveries race."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import Column, Integer, MetaData, Table, Text, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.idempotency import first_deliveries, first_delivery
from tests.waiting import eventually


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


async def test_claims_of_the_same_ids_in_opposite_orders_wait_for_each_other_without_deadlock(
    engine: AsyncEngine,
) -> None:
    # Two consumers of one handler overlapping in a rebalance may fetch the same messages in
    # different orders. Each claim waits on an id a third transaction holds; once it rolls
    # back, the two race. Claiming in fetch order, the one that wins the first id would wait
    # on the other's second while the other waits on it (a deadlock, about every other
    # round); claiming in one order, the loser waits and then finds both ids taken.
    handler = f"test-{uuid.uuid4()}"
    for _ in range(6):
        x, y = str(uuid.uuid4()), str(uuid.uuid4())
        async with engine.connect() as holder, engine.connect() as one, engine.connect() as two:
            held = await holder.begin()
            assert await first_deliveries(holder, handler, [x]) == {x}
            claims: dict[asyncio.Task[set[str]], tuple[AsyncConnection, int]] = {}
            for conn, ids in ((one, [x, y]), (two, [y, x])):
                await conn.begin()
                pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                claims[asyncio.create_task(first_deliveries(conn, handler, ids))] = (conn, pid)

            pids = [pid for _, pid in claims.values()]

            async def both_wait(pids: list[int] = pids) -> bool:
                async with engine.connect() as probe:
                    waiting = await probe.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity"
                            " WHERE pid = ANY(:pids) AND wait_event_type = 'Lock'"
                        ),
                        {"pids": pids},
                    )
                    return waiting.scalar_one() == 2

            await eventually(both_wait, 10, "both claims waiting on the held id")
            await held.rollback()
            done, pending = await asyncio.wait(claims, return_when=asyncio.FIRST_COMPLETED)
            winner = done.pop()
            assert winner.result() == {x, y}
            await claims[winner][0].commit()
            (loser,) = pending or done
            assert await loser == set()
            await claims[loser][0].commit()
