"""Loading aggregates (snapshot + newer events) and saving what they recorded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar
from uuid import UUID

from domain.aggregate import Aggregate
from domain.event_store import (
    NO_STREAM,
    AppendResult,
    EventStore,
    NewEvent,
    Snapshot,
    SnapshotStore,
    StreamAppend,
    UniqueKey,
    WrongExpectedVersion,
)
from domain.events import JsonDict, from_data, to_data, type_name

A = TypeVar("A", bound=Aggregate)
T = TypeVar("T")
EventIds = Callable[[int], UUID]
"""Gives the id of the n-th event a save appends; deterministic ids make saves idempotent."""


class Repository:
    """Aggregates in and out of an event store, with optional snapshots."""

    def __init__(
        self,
        store: EventStore,
        snapshots: SnapshotStore | None = None,
        snapshot_every: Mapping[str, int] | None = None,
    ) -> None:
        self._store = store
        self._snapshots = snapshots
        self._snapshot_every = dict(snapshot_every or {})

    async def load(self, cls: type[A], aggregate_id: str) -> A:
        """The aggregate as of its newest event (a fresh one if the stream is empty)."""
        snapshot = await self._usable_snapshot(cls, aggregate_id)
        if snapshot is None:
            aggregate = cls(aggregate_id)
        else:
            aggregate = cls.from_snapshot(aggregate_id, snapshot.state, snapshot.version)
        recorded = await self._store.read_stream(aggregate_id, from_version=aggregate.version + 1)
        aggregate.fold(from_data(r.type, r.data, r.schema_version) for r in recorded)
        return aggregate

    async def load_many(self, loads: Sequence[tuple[type[Aggregate], str]]) -> list[Aggregate]:
        """Several aggregates with two reads in all: their snapshots, then newer events."""
        wanted = [
            i for cls, i in loads if self._snapshots is not None and self.snapshot_interval(cls)
        ]
        found = await self._snapshots.load_many(wanted) if wanted and self._snapshots else {}
        aggregates: list[Aggregate] = []
        for cls, aggregate_id in loads:
            snapshot = found.get(aggregate_id)
            usable = (
                snapshot is not None
                and snapshot.aggregate_type == cls.__name__
                and snapshot.schema_version == cls.snapshot_schema
            )
            if snapshot is not None and usable:
                aggregates.append(cls.from_snapshot(aggregate_id, snapshot.state, snapshot.version))
            else:
                aggregates.append(cls(aggregate_id))
        newer = await self._store.read_streams({a.id: a.version + 1 for a in aggregates})
        for aggregate in aggregates:
            aggregate.fold(from_data(r.type, r.data, r.schema_version) for r in newer[aggregate.id])
        return aggregates

    async def save(
        self,
        aggregate: Aggregate,
        event_ids: EventIds,
        metadata: JsonDict,
        claims: Sequence[UniqueKey] = (),
        releases: Sequence[UniqueKey] = (),
    ) -> AppendResult:
        """Append the recorded events, expecting the version the aggregate was loaded at."""
        return await self.save_all([aggregate], event_ids, metadata, claims, releases)

    async def save_all(
        self,
        aggregates: Sequence[Aggregate],
        event_ids: EventIds,
        metadata: JsonDict,
        claims: Sequence[UniqueKey] = (),
        releases: Sequence[UniqueKey] = (),
    ) -> AppendResult:
        """Save several aggregates atomically; claims and releases go with the first.

        Aggregates that recorded nothing are left out; if none did, nothing is appended and
        the result holds their versions and position 0.
        """
        changed = [a for a in aggregates if a.pending]
        if not changed:
            return AppendResult({a.id: a.version for a in aggregates}, 0)
        appends = []
        index = 0
        for number, aggregate in enumerate(changed):
            new_events = []
            for event in aggregate.pending:
                new_events.append(
                    NewEvent(
                        event_id=event_ids(index),
                        type=type_name(event),
                        data=to_data(event),
                        metadata=metadata,
                        schema_version=type(event).schema_version,
                    )
                )
                index += 1
            appends.append(
                StreamAppend(
                    aggregate.id,
                    new_events,
                    aggregate.version or NO_STREAM,
                    claims if number == 0 else (),
                    releases if number == 0 else (),
                )
            )
        loaded_at = {a.id: a.version for a in changed}
        result = await self._store.append(*appends)
        for aggregate in changed:
            aggregate.version = result.versions[aggregate.id]
            aggregate.pending.clear()
            await self._maybe_snapshot(aggregate, loaded_at[aggregate.id])
        return result

    def snapshot_interval(self, cls: type[Aggregate]) -> int | None:
        """How many events apart this repository snapshots an aggregate type."""
        return self._snapshot_every.get(cls.__name__, cls.snapshot_every)

    async def _usable_snapshot(self, cls: type[Aggregate], aggregate_id: str) -> Snapshot | None:
        if self._snapshots is None or not self.snapshot_interval(cls):
            return None
        snapshot = await self._snapshots.load(aggregate_id)
        if snapshot is None or snapshot.aggregate_type != cls.__name__:
            return None
        return snapshot if snapshot.schema_version == cls.snapshot_schema else None

    async def _maybe_snapshot(self, aggregate: Aggregate, loaded_at: int) -> None:
        every = self.snapshot_interval(type(aggregate))
        if self._snapshots is None or not every or aggregate.version // every == loaded_at // every:
            return
        await self._snapshots.save(
            Snapshot(
                stream_id=aggregate.id,
                version=aggregate.version,
                aggregate_type=type(aggregate).__name__,
                schema_version=type(aggregate).snapshot_schema,
                state=aggregate.snapshot_state(),
            )
        )


async def retry_on_conflict(attempt: Callable[[], Awaitable[T]], attempts: int = 10) -> T:
    """Run load-decide-save again when another writer moved the stream in between."""
    for _ in range(attempts - 1):
        try:
            return await attempt()
        except WrongExpectedVersion:
            continue
    return await attempt()
