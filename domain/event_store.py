"""The event store port: what the domain and the application need from any event store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol
from uuid import UUID

from domain.events import JsonDict

ANY: Final = -1
"""Expected version: append whatever the stream's version is."""
NO_STREAM: Final = 0
"""Expected version: the stream must not exist yet."""


@dataclass(frozen=True)
class NewEvent:
    """An event about to be appended; its id makes the append idempotent."""

    event_id: UUID
    type: str
    data: JsonDict
    metadata: JsonDict = field(default_factory=dict)
    schema_version: int = 1


@dataclass(frozen=True)
class RecordedEvent:
    """An event as stored, with its place in its stream and in the global order."""

    position: int
    stream_id: str
    version: int
    event_id: UUID
    type: str
    schema_version: int
    data: JsonDict
    metadata: JsonDict
    recorded_at: datetime


@dataclass(frozen=True)
class UniqueKey:
    """A value owned by at most one stream at a time, such as an email address."""

    scope: str
    value: str


@dataclass(frozen=True)
class StreamAppend:
    """One stream's part of an atomic append."""

    stream_id: str
    events: Sequence[NewEvent]
    expected_version: int
    claims: Sequence[UniqueKey] = ()
    releases: Sequence[UniqueKey] = ()


@dataclass(frozen=True)
class AppendResult:
    """Where an append left its streams: new versions and the last global position."""

    versions: dict[str, int]
    position: int


@dataclass(frozen=True)
class EventPage:
    """A gap-safe slice of the global order and the position to continue after."""

    events: list[RecordedEvent]
    next_position: int


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event as stored, its payload still the JSON the store holds, for passing it on.

    `body` is `{"data": ..., "metadata": ...}` as UTF-8 JSON, and `traceparent` the
    metadata's `traceparent` when it has one: a publisher needs nothing decoded.
    """

    position: int
    stream_id: str
    version: int
    event_id: str
    type: str
    schema_version: int
    recorded_at: datetime
    body: bytes
    traceparent: str | None


@dataclass(frozen=True)
class EncodedPage:
    """A gap-safe slice of the global order, its events encoded, and where to continue."""

    events: list[EncodedEvent]
    next_position: int


@dataclass(frozen=True)
class Snapshot:
    """An aggregate's state at a version, so loading need not replay every event."""

    stream_id: str
    version: int
    aggregate_type: str
    schema_version: int
    state: JsonDict


class SnapshotStore(Protocol):
    """Where snapshots are kept; a snapshot is a cache, never the truth."""

    async def load_many(self, stream_ids: Sequence[str]) -> dict[str, Snapshot]:
        """The newest snapshot of each stream that has one."""
        ...

    async def save(self, snapshot: Snapshot) -> None:
        """Keep a snapshot unless a newer one is already stored."""
        ...


class WrongExpectedVersion(Exception):
    """The stream moved on since the caller read it."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream_id}: expected version {expected}, actual {actual}")
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class UniqueKeyTaken(Exception):
    """Another stream already owns a unique key."""

    def __init__(self, key: UniqueKey) -> None:
        super().__init__(f"{key.scope} {key.value!r} is already taken")
        self.key = key


class EventIdConflict(Exception):
    """An event id was appended before with different content."""

    def __init__(self, event_id: UUID) -> None:
        super().__init__(f"event {event_id} was already appended with different content")
        self.event_id = event_id


class EventStore(Protocol):
    """Append-only streams with a gap-safe global order."""

    async def append(self, *streams: StreamAppend) -> AppendResult:
        """Append to one or more streams atomically, checking each expected version."""
        ...

    async def read_stream(
        self,
        stream_id: str,
        from_version: int = 1,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """A stream's events from a version, forwards or backwards."""
        ...

    async def read_streams(
        self, from_versions: Mapping[str, int]
    ) -> dict[str, list[RecordedEvent]]:
        """Several streams' events, each from its own version."""
        ...

    async def read_all(
        self,
        after_position: int,
        limit: int,
        types: Sequence[str] | None = None,
        wait_seconds: float = 1.0,
    ) -> EventPage:
        """Events after a position in global order, never passing an uncommitted one."""
        ...

    async def head_position(self) -> int:
        """The highest position appended so far."""
        ...


def same_content(recorded: RecordedEvent, new: NewEvent, stream_id: str) -> bool:
    """Whether a stored event is the one an idempotent retry tries to append again."""
    return (
        recorded.stream_id == stream_id
        and recorded.type == new.type
        and recorded.schema_version == new.schema_version
        and _normalise(recorded.data) == _normalise(new.data)
    )


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value
