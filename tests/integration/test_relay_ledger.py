"""The relay's ledger of acknowledgements stays bounded and still maps a loss to the store."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import relay_ledger
from adapters.relay_ledger import PartitionAck
from adapters.schema import relay_acks

KEEP = 3


def pages(partition: int, count: int) -> list[PartitionAck]:
    """`count` pages of 10 events on a partition: offsets 10*i.., first positions 100*i+1."""
    return [
        PartitionAck(partition, 10 * i, 10 * i + 10, 10 * i + 5, 100 * i + 1) for i in range(count)
    ]


async def rows(engine: AsyncEngine, name: str) -> int:
    async with engine.begin() as conn:
        query = select(func.count()).where(relay_acks.c.name == name)
        return int((await conn.execute(query)).scalar_one())


async def test_pruning_keeps_each_partition_to_its_newest_pages_and_one_folded_row(
    engine: AsyncEngine,
) -> None:
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await relay_ledger.load(conn, name)
        for page in range(40):
            await relay_ledger.record(conn, name, [pages(0, 40)[page], pages(1, 40)[page]])
            await relay_ledger.prune(conn, name, KEEP)
    assert await rows(engine, name) == 2 * (KEEP + 1)

    async with engine.begin() as conn:
        ledger = await relay_ledger.load(conn, name)
    assert ledger.acked_ends == {0: 400, 1: 400}
    assert ledger.last_batches == {0: 395, 1: 395}


async def test_a_loss_inside_the_folded_pages_publishes_again_from_no_later_than_it(
    engine: AsyncEngine,
) -> None:
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await relay_ledger.load(conn, name)
        await relay_ledger.record(conn, name, pages(0, 10))
        await relay_ledger.prune(conn, name, KEEP)
    assert await rows(engine, name) == KEEP + 1
    async with engine.begin() as conn:
        # Offset 75 lies in a page kept apart (offsets 70..79, from position 701).
        assert await relay_ledger.first_lost_position(conn, name, {0: 75}) == 701
    async with engine.begin() as conn:
        # Offset 35 lies among the folded pages: back to the first of them, never later.
        assert await relay_ledger.first_lost_position(conn, name, {0: 35}) == 1


async def test_forgetting_everything_still_finds_the_first_position_ever_published(
    engine: AsyncEngine,
) -> None:
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await relay_ledger.load(conn, name)
        await relay_ledger.record(conn, name, pages(0, 10) + pages(1, 10)[3:])
        await relay_ledger.prune(conn, name, KEEP)
        assert await relay_ledger.forget_all(conn, name) == 1
    assert await rows(engine, name) == 0
