"""The relay's record of what the broker acknowledged, kept next to its checkpoint.

Per partition it knows how far the broker's log reached (the highest acknowledged offset
plus one) and which store position each acknowledged page started at, so a broker that lost
acknowledged events (an in-memory broker restarted, a topic recreated, a failover to an
emptier cluster) is noticed, and the relay publishes again from the first position it lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters import checkpoints
from adapters.database import driver_of
from adapters.schema import checkpoints as checkpoints_table
from adapters.schema import relay_acks, relay_brokers


@dataclass(frozen=True)
class PartitionAck:
    """The broker put a page's events for one partition at offsets [base_offset, end_offset);
    its last batch starts at `last_batch_offset`."""

    partition: int
    base_offset: int
    end_offset: int
    last_batch_offset: int
    first_position: int


@dataclass
class Ledger:
    """What the broker acknowledged so far: per partition, the end of the acknowledged log."""

    cluster_id: str | None = None
    acked_ends: dict[int, int] = field(default_factory=dict)
    last_batches: dict[int, int] = field(default_factory=dict)
    recoveries: int = 0

    def snapshot(self) -> Ledger:
        """A copy that later acknowledgements leave as it is."""
        return Ledger(
            self.cluster_id, dict(self.acked_ends), dict(self.last_batches), self.recoveries
        )

    def acknowledge(self, acks: Sequence[PartitionAck]) -> None:
        for ack in acks:
            self.acked_ends[ack.partition] = max(
                self.acked_ends.get(ack.partition, 0), ack.end_offset
            )
            self.last_batches[ack.partition] = max(
                self.last_batches.get(ack.partition, 0), ack.last_batch_offset
            )


async def load(conn: AsyncConnection, name: str) -> Ledger:
    """The relay's ledger, creating its broker row the first time."""
    await conn.execute(insert(relay_brokers).values(name=name).on_conflict_do_nothing())
    broker = (
        await conn.execute(
            select(relay_brokers.c.cluster_id, relay_brokers.c.recoveries).where(
                relay_brokers.c.name == name
            )
        )
    ).one()
    rows = (
        await conn.execute(
            select(
                relay_acks.c.partition,
                func.max(relay_acks.c.end_offset),
                func.max(relay_acks.c.last_batch_offset),
            )
            .where(relay_acks.c.name == name)
            .group_by(relay_acks.c.partition)
        )
    ).all()
    return Ledger(
        broker.cluster_id,
        {int(p): int(end) for p, end, _ in rows},
        {int(p): int(last) for p, _, last in rows},
        broker.recoveries,
    )


# A page published again over a log cut at the same offset: the newer one counts. One
# prepared statement however many partitions the page went to.
_RECORD = (
    "INSERT INTO relay_acks (name, partition, base_offset, end_offset, last_batch_offset,"
    " first_position) SELECT %(name)s, * FROM unnest(%(partitions)s::integer[],"
    " %(base_offsets)s::bigint[], %(end_offsets)s::bigint[], %(last_batch_offsets)s::bigint[],"
    " %(first_positions)s::bigint[])"
    " ON CONFLICT (name, partition, base_offset) DO UPDATE SET"
    " end_offset = excluded.end_offset, last_batch_offset = excluded.last_batch_offset,"
    " first_position = excluded.first_position"
)


async def record(conn: AsyncConnection, name: str, acks: Sequence[PartitionAck]) -> None:
    """Store a page's acknowledgements (in the transaction that moves the checkpoint)."""
    if not acks:
        return
    params = {
        "name": name,
        "partitions": [ack.partition for ack in acks],
        "base_offsets": [ack.base_offset for ack in acks],
        "end_offsets": [ack.end_offset for ack in acks],
        "last_batch_offsets": [ack.last_batch_offset for ack in acks],
        "first_positions": [ack.first_position for ack in acks],
    }
    await (await driver_of(conn)).execute(_RECORD, params, prepare=True)


KEPT_PAGES = 16
"""Acknowledged pages kept apart per partition; older ones are folded into one row."""


_PRUNE = text(
    """
    WITH folded AS (
        SELECT partition, min(base_offset) AS floor, max(base_offset) AS top,
               max(end_offset) AS end_offset, max(last_batch_offset) AS last_batch_offset,
               min(first_position) AS first_position
        FROM (
            SELECT partition, base_offset, end_offset, last_batch_offset, first_position,
                   row_number() OVER (PARTITION BY partition ORDER BY base_offset DESC) AS rank
            FROM relay_acks
            WHERE name = :name
        ) AS ranked
        WHERE rank > :kept
        GROUP BY partition
        HAVING count(*) >= 2
    ), gone AS (
        DELETE FROM relay_acks AS acks
        USING folded
        WHERE acks.name = :name
          AND acks.partition = folded.partition
          AND acks.base_offset > folded.floor
          AND acks.base_offset <= folded.top
    )
    UPDATE relay_acks AS acks
    SET end_offset = folded.end_offset,
        last_batch_offset = folded.last_batch_offset,
        first_position = folded.first_position
    FROM folded
    WHERE acks.name = :name
      AND acks.partition = folded.partition
      AND acks.base_offset = folded.floor
    """
)
"""Per partition, the rows older than the newest `kept` are those from its lowest offset
(`floor`) to `top`: the row at `floor` takes in the others' span, and they go."""


async def prune(conn: AsyncConnection, name: str, keep: int | None = None) -> None:
    """Fold each partition's acknowledgements older than its newest `keep` into one row.

    Recovery needs, per partition, the end of the acknowledged log (the newest rows hold
    it), the page holding a lost offset (to publish again from its first position), and
    the first position ever published (for a broker that came back empty). The folded row
    spans the offsets of the rows it replaces and starts at the lowest position among
    them: a loss found inside it maps back to a position at or before the first one lost
    (publishing again from there re-sends more, never less), and `forget_all` still finds
    the first position ever published. Right after it the table holds at most `keep + 1`
    rows per partition, however long the relay has run.

    One statement, whatever the number of partitions: the rows it folds are those it read
    (a page recorded meanwhile is among the newest, and kept). The relay runs it in a
    transaction of its own, never beside its recording of a page or a recovery.
    """
    kept = KEPT_PAGES if keep is None else keep
    await conn.execute(_PRUNE, {"name": name, "kept": kept})


async def first_lost_position(conn: AsyncConnection, name: str, survived: Mapping[int, int]) -> int:
    """Forget what the broker lost and return the first store position it no longer has.

    `survived` maps each partition that lost events to the end of what its log still holds.
    Publishing again from the first event of the page holding the lost offset re-sends at
    most that page's part the broker still had.
    """
    first: int | None = None
    for partition, end in survived.items():
        # The page holding the first lost offset, or (if no page recorded it) the last page
        # before it: the lost events were published after that page's first one.
        row = (
            await conn.execute(
                select(relay_acks.c.first_position)
                .where(
                    relay_acks.c.name == name,
                    relay_acks.c.partition == partition,
                    relay_acks.c.base_offset <= end,
                )
                .order_by(relay_acks.c.base_offset.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        position = 0 if row is None else int(row)
        first = position if first is None else min(first, position)
        await conn.execute(
            delete(relay_acks).where(
                relay_acks.c.name == name,
                relay_acks.c.partition == partition,
                relay_acks.c.end_offset > end,
            )
        )
    return 0 if first is None else first


async def forget_all(conn: AsyncConnection, name: str) -> int:
    """Forget every acknowledgement; the first position ever published (0 if none)."""
    first = (
        await conn.execute(
            select(func.min(relay_acks.c.first_position)).where(relay_acks.c.name == name)
        )
    ).scalar_one_or_none()
    await conn.execute(delete(relay_acks).where(relay_acks.c.name == name))
    return 0 if first is None else int(first)


async def record_recovery(
    conn: AsyncConnection, name: str, cluster_id: str | None, from_position: int
) -> None:
    """Count one publishing-again after a broker lost events, and remember its cluster."""
    await conn.execute(
        update(relay_brokers)
        .where(relay_brokers.c.name == name)
        .values(
            cluster_id=cluster_id,
            recoveries=relay_brokers.c.recoveries + 1,
            last_recovery_at=func.now(),
            last_recovery_from=from_position,
        )
    )


async def remember_cluster(conn: AsyncConnection, name: str, cluster_id: str | None) -> None:
    """The cluster the relay publishes to, first seen."""
    await conn.execute(
        update(relay_brokers).where(relay_brokers.c.name == name).values(cluster_id=cluster_id)
    )


async def checkpoint(conn: AsyncConnection, name: str) -> int:
    """The relay's checkpoint, locked until the transaction ends."""
    await checkpoints.load(conn, name)
    query = select(checkpoints_table.c.position).where(checkpoints_table.c.name == name)
    return int((await conn.execute(query.with_for_update())).scalar_one())


async def rewind(conn: AsyncConnection, name: str, expected: int, position: int) -> None:
    """Set the relay's checkpoint back to `position` (an operator's command).

    The running relay notices on its next batch (its checkpoint moved) and follows.
    """
    await checkpoints.advance(conn, name, expected, position)
