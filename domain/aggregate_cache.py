"""Aggregates kept in memory between commands, as the state a snapshot would hold."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TypeVar

from domain.aggregate import Aggregate
from domain.events import JsonDict

A = TypeVar("A", bound=Aggregate)


@dataclass(frozen=True)
class _Entry:
    aggregate_type: str
    schema_version: int
    version: int
    state: JsonDict


class AggregateCache:
    """The newest known state of recently used aggregates; the least recently used go first.

    It keeps copies (what `snapshot_state` returns), never live objects, so two commands
    running at once never share an aggregate. An entry may be behind the store: a load still
    reads the events after it, and `Repository.change` lets the store check every decision
    made on it (see there). Only aggregates that take snapshots can be cached.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a cache holds at least one aggregate")
        self._capacity = capacity
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, cls: type[A], aggregate_id: str) -> A | None:
        """A fresh copy of the cached aggregate, or None."""
        entry = self._entries.get(aggregate_id)
        if (
            entry is None
            or entry.aggregate_type != cls.__name__
            or entry.schema_version != cls.snapshot_schema
        ):
            return None
        self._entries.move_to_end(aggregate_id)
        return cls.from_snapshot(aggregate_id, entry.state, entry.version)

    def put(self, aggregate: Aggregate) -> None:
        """Remember an aggregate whose state is exactly the fold of its stored events.

        Unsaved events, or a version older than the one cached, leave the cache as it was.
        """
        cls = type(aggregate)
        if aggregate.pending or not aggregate.version or not cls.takes_snapshots():
            return
        known = self._entries.get(aggregate.id)
        if known is not None and known.version > aggregate.version:
            return
        self._entries[aggregate.id] = _Entry(
            cls.__name__, cls.snapshot_schema, aggregate.version, aggregate.snapshot_state()
        )
        self._entries.move_to_end(aggregate.id)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
