"""Loading aggregates (snapshot + newer events) and saving what they recorded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar, cast
from uuid import UUID

from domain.aggregate import Aggregate
from domain.aggregate_cache import AggregateCache
from domain.errors import DomainError
from domain.event_store import (
    NO_STREAM,
    AppendResult,
    EventIdConflict,
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
Append = Callable[..., Awaitable[AppendResult]]
"""Appends `StreamAppend`s atomically as `EventStore.append` does (and may write more)."""


class Repository:
    """Aggregates in and out of an event store, with optional snapshots and cache.

    A load starts from the cached state, else from the newest snapshot, else from nothing,
    and always folds the stream's events after that: whatever the cache or the snapshots
    hold, a loaded aggregate is as new as the store.
    """

    def __init__(
        self,
        store: EventStore,
        snapshots: SnapshotStore | None = None,
        snapshot_every: Mapping[str, int] | None = None,
        cache: AggregateCache | None = None,
    ) -> None:
        self._store = store
        self._snapshots = snapshots
        self._snapshot_every = dict(snapshot_every or {})
        self._cache = cache

    async def load(self, cls: type[A], aggregate_id: str) -> A:
        """The aggregate as of its newest event (a fresh one if the stream is empty)."""
        (aggregate,) = await self.load_many([(cls, aggregate_id)])
        return cast(A, aggregate)

    def cached(self, cls: type[A], aggregate_id: str) -> A | None:
        """The cached state, which may be behind the store: only for what never changes."""
        return self._cache.get(cls, aggregate_id) if self._cache is not None else None

    async def load_many(self, loads: Sequence[tuple[type[Aggregate], str]]) -> list[Aggregate]:
        """Several aggregates with at most two reads: snapshots not cached, then newer events."""
        cached = [self.cached(cls, i) for cls, i in loads]
        wanted = [
            i
            for (cls, i), hit in zip(loads, cached, strict=True)
            if hit is None and self._snapshots is not None and self.snapshot_interval(cls)
        ]
        found = await self._snapshots.load_many(wanted) if wanted and self._snapshots else {}
        aggregates: list[Aggregate] = []
        for (cls, aggregate_id), hit in zip(loads, cached, strict=True):
            snapshot = found.get(aggregate_id)
            usable = (
                snapshot is not None
                and snapshot.aggregate_type == cls.__name__
                and snapshot.schema_version == cls.snapshot_schema
            )
            if hit is not None:
                aggregates.append(hit)
            elif snapshot is not None and usable:
                aggregates.append(cls.from_snapshot(aggregate_id, snapshot.state, snapshot.version))
            else:
                aggregates.append(cls(aggregate_id))
        newer = await self._store.read_streams({a.id: a.version + 1 for a in aggregates})
        for aggregate, hit in zip(aggregates, cached, strict=True):
            recorded = newer[aggregate.id]
            aggregate.fold(from_data(r.type, r.data, r.schema_version) for r in recorded)
            if self._cache is not None and (hit is None or recorded):
                self._cache.put(aggregate)
        return aggregates

    async def change(
        self,
        loads: Sequence[tuple[type[Aggregate], str]],
        decide: Callable[..., object],
        event_ids: EventIds,
        metadata: JsonDict,
    ) -> tuple[list[Aggregate], AppendResult]:
        """Load, let `decide` change the aggregates, save them atomically.

        When every aggregate is cached, `decide` first runs on the cached state without
        reading the store. That is safe because nothing rests on the cached state alone:
        what `decide` appends is checked against the cached versions by the append itself,
        aggregates it leaves unchanged are checked for newer events, and a rejection is only
        believed from the store. If any check fails, `decide` runs again on a fresh load.
        """
        cached = self._all_cached(loads)
        if cached is not None:
            outcome = await self._change_cached(cached, decide, event_ids, metadata)
            if outcome is not None:
                return cached, outcome
        aggregates = await self.load_many(loads)
        decide(*aggregates)
        return aggregates, await self.save_all(aggregates, event_ids, metadata)

    def _all_cached(self, loads: Sequence[tuple[type[Aggregate], str]]) -> list[Aggregate] | None:
        aggregates = []
        for cls, aggregate_id in loads:
            cached = self.cached(cls, aggregate_id)
            if cached is None:
                return None
            aggregates.append(cached)
        return aggregates

    async def _change_cached(
        self,
        cached: list[Aggregate],
        decide: Callable[..., object],
        event_ids: EventIds,
        metadata: JsonDict,
    ) -> AppendResult | None:
        """The save of a decision on cached state; None when it must be made again."""
        try:
            decide(*cached)
        except DomainError:
            return None
        unchanged = {a.id: a.version + 1 for a in cached if not a.pending}
        if unchanged and any((await self._store.read_streams(unchanged)).values()):
            return None
        try:
            return await self.save_all(cached, event_ids, metadata)
        except (WrongExpectedVersion, EventIdConflict):
            return None

    async def save(
        self,
        aggregate: Aggregate,
        event_ids: EventIds,
        metadata: JsonDict,
        claims: Sequence[UniqueKey] = (),
        releases: Sequence[UniqueKey] = (),
        append: Append | None = None,
    ) -> AppendResult:
        """Append the recorded events, expecting the version the aggregate was loaded at.

        `append` replaces the store's own append, for a write that must commit with the
        events (a user's credentials with their registration).
        """
        return await self.save_all([aggregate], event_ids, metadata, claims, releases, append)

    async def save_all(
        self,
        aggregates: Sequence[Aggregate],
        event_ids: EventIds,
        metadata: JsonDict,
        claims: Sequence[UniqueKey] = (),
        releases: Sequence[UniqueKey] = (),
        append: Append | None = None,
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
        result = await (append or self._store.append)(*appends)
        for aggregate in changed:
            # An append that repeats an earlier one (same event ids) reports where that one
            # landed; the state here is then exactly the stored fold only if it landed right
            # after the version this aggregate was loaded at.
            exact = result.versions[aggregate.id] == aggregate.version + len(aggregate.pending)
            aggregate.version = result.versions[aggregate.id]
            aggregate.pending.clear()
            if exact:
                await self._maybe_snapshot(aggregate, loaded_at[aggregate.id])
                if self._cache is not None:
                    self._cache.put(aggregate)
        return result

    def snapshot_interval(self, cls: type[Aggregate]) -> int | None:
        """How many events apart this repository snapshots an aggregate type."""
        return self._snapshot_every.get(cls.__name__, cls.snapshot_every)

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
