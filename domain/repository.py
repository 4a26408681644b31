"""Loading aggregates from their streams and saving what they recorded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar
from uuid import UUID

from domain.aggregate import Aggregate
from domain.event_store import (
    NO_STREAM,
    AppendResult,
    EventStore,
    NewEvent,
    StreamAppend,
    UniqueKey,
)
from domain.events import JsonDict, from_data, to_data, type_name

A = TypeVar("A", bound=Aggregate)
EventIds = Callable[[int], UUID]
"""Gives the id of the n-th event a save appends; deterministic ids make saves idempotent."""


class Repository:
    """Aggregates in and out of an event store."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def load(self, cls: type[A], aggregate_id: str) -> A:
        """The aggregate as of its newest event (a fresh one if the stream is empty)."""
        recorded = await self._store.read_stream(aggregate_id)
        events = [from_data(r.type, r.data, r.schema_version) for r in recorded]
        return cls.replay(aggregate_id, events)

    async def save(
        self,
        aggregate: Aggregate,
        event_ids: EventIds,
        metadata: JsonDict,
        claims: Sequence[UniqueKey] = (),
        releases: Sequence[UniqueKey] = (),
    ) -> AppendResult:
        """Append the recorded events, expecting the version the aggregate was loaded at."""
        new_events = [
            NewEvent(
                event_id=event_ids(index),
                type=type_name(event),
                data=to_data(event),
                metadata=metadata,
                schema_version=type(event).schema_version,
            )
            for index, event in enumerate(aggregate.pending)
        ]
        expected = aggregate.version if aggregate.version else NO_STREAM
        result = await self._store.append(
            StreamAppend(aggregate.id, new_events, expected, claims, releases)
        )
        aggregate.version = result.versions[aggregate.id]
        aggregate.pending.clear()
        return result
