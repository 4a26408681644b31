"""Aggregate base: state rebuilt from events, new events recorded by command methods."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Self

from domain.events import DomainEvent, JsonDict


class Aggregate:
    """A consistency boundary whose state is the fold of its events."""

    snapshot_every: ClassVar[int | None] = None
    """Take a snapshot every this many events (None: never); the repository can override it."""
    snapshot_schema: ClassVar[int] = 1
    """Bump when `snapshot_state` changes shape: older snapshots are then ignored."""

    def __init__(self, aggregate_id: str) -> None:
        self.id = aggregate_id
        self.version = 0
        self.pending: list[DomainEvent] = []

    @classmethod
    def replay(cls, aggregate_id: str, events: Iterable[DomainEvent]) -> Self:
        """Rebuild state from all past events."""
        aggregate = cls(aggregate_id)
        aggregate.fold(events)
        return aggregate

    @classmethod
    def from_snapshot(cls, aggregate_id: str, state: JsonDict, version: int) -> Self:
        """Rebuild state from a snapshot taken at `version`; newer events are folded after."""
        aggregate = cls(aggregate_id)
        aggregate.restore_state(state)
        aggregate.version = version
        return aggregate

    def fold(self, events: Iterable[DomainEvent]) -> None:
        """Apply stored events, counting versions."""
        for event in events:
            self.apply(event)
            self.version += 1

    def record(self, event: DomainEvent) -> DomainEvent:
        """Apply a new event and keep it to be saved."""
        self.apply(event)
        self.pending.append(event)
        return event

    @property
    def exists(self) -> bool:
        """Whether any event was ever recorded for this aggregate."""
        return self.version > 0 or bool(self.pending)

    def apply(self, event: DomainEvent) -> None:
        """Change state for one event; never checks rules."""
        raise NotImplementedError

    @classmethod
    def takes_snapshots(cls) -> bool:
        """Whether this type implements `snapshot_state` and `restore_state`."""
        return cls.snapshot_state is not Aggregate.snapshot_state

    def snapshot_state(self) -> JsonDict:
        """The state as JSON-compatible values, for a snapshot.

        The values are new: none of them is a container the aggregate keeps using.
        """
        raise NotImplementedError(f"{type(self).__name__} does not take snapshots")

    def restore_state(self, state: JsonDict) -> None:
        """Set the state from `snapshot_state`'s output, keeping none of its containers."""
        raise NotImplementedError(f"{type(self).__name__} does not take snapshots")
