"""Aggregate base: state rebuilt from events, new events recorded by command methods."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Self

from domain.events import DomainEvent


class Aggregate:
    """A consistency boundary whose state is the fold of its events."""

    def __init__(self, aggregate_id: str) -> None:
        self.id = aggregate_id
        self.version = 0
        self.pending: list[DomainEvent] = []

    @classmethod
    def replay(cls, aggregate_id: str, events: Iterable[DomainEvent], version: int = 0) -> Self:
        """Rebuild state from past events (after a snapshot taken at `version`)."""
        aggregate = cls(aggregate_id)
        aggregate.version = version
        for event in events:
            aggregate.apply(event)
            aggregate.version += 1
        return aggregate

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
