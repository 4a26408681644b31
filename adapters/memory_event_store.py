"""In-memory event and snapshot stores: the ports' semantics without a database, for tests."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from domain.event_store import (
    ANY,
    NO_STREAM,
    AppendResult,
    EventIdConflict,
    EventPage,
    EventStore,
    NewEvent,
    RecordedEvent,
    Snapshot,
    SnapshotStore,
    StreamAppend,
    UniqueKey,
    UniqueKeyTaken,
    WrongExpectedVersion,
    same_content,
)


class _EventIdTaken(Exception):
    """An event id in the append is already stored (what a unique index would refuse)."""


class InMemoryEventStore(EventStore):
    """Behaves as `PostgresEventStore` does, checked by the same contract tests.

    Every append runs to the end without awaiting, so under asyncio it is atomic and the
    global order has no gaps: `read_all` never has to wait.
    """

    def __init__(self) -> None:
        self._events: list[RecordedEvent] = []
        self._by_id: dict[UUID, RecordedEvent] = {}
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._keys: dict[UniqueKey, str] = {}

    async def append(self, *streams: StreamAppend) -> AppendResult:
        """Append to one or more streams atomically, idempotent by event id."""
        if not streams or any(not s.events for s in streams):
            raise ValueError("an append needs at least one event for every stream")
        if len({s.stream_id for s in streams}) < len(streams):
            raise ValueError("an append names each stream at most once")
        ids = [e.event_id for s in streams for e in s.events]
        if len(set(ids)) < len(ids):
            raise ValueError("an append names each event id at most once")
        try:
            return self._append(streams)
        except (WrongExpectedVersion, UniqueKeyTaken, _EventIdTaken):
            replay = self._already_appended(streams)
            if replay is not None:
                return replay
            raise

    def _append(self, streams: Sequence[StreamAppend]) -> AppendResult:
        """Check every stream in id order, as Postgres locks them, and only then write."""
        keys = dict(self._keys)
        versions: dict[str, int] = {}
        written: list[RecordedEvent] = []
        position = len(self._events)
        for stream in sorted(streams, key=lambda s: s.stream_id):
            actual = len(self._streams.get(stream.stream_id, ()))
            if not _expected(stream.expected_version, actual):
                raise WrongExpectedVersion(stream.stream_id, stream.expected_version, actual)
            for key in stream.claims:
                if keys.setdefault(key, stream.stream_id) != stream.stream_id:
                    raise UniqueKeyTaken(key)
            for key in stream.releases:
                if keys.get(key) == stream.stream_id:
                    del keys[key]
            if any(e.event_id in self._by_id for e in stream.events):
                raise _EventIdTaken
            for version, new in enumerate(stream.events, start=actual + 1):
                position += 1
                written.append(_recorded(new, stream.stream_id, version, position))
            versions[stream.stream_id] = actual + len(stream.events)
        self._keys = keys
        for event in written:
            self._streams.setdefault(event.stream_id, []).append(event)
            self._events.append(event)
            self._by_id[event.event_id] = event
        return AppendResult(versions, position)

    def _already_appended(self, streams: Sequence[StreamAppend]) -> AppendResult | None:
        """The earlier result when every event was appended before with the same content."""
        stored = [self._by_id.get(e.event_id) for s in streams for e in s.events]
        if not any(stored):
            return None
        versions: dict[str, int] = {}
        for stream in streams:
            for new in stream.events:
                old = self._by_id.get(new.event_id)
                if old is None or not same_content(old, new, stream.stream_id):
                    raise EventIdConflict(new.event_id)
                versions[old.stream_id] = max(versions.get(old.stream_id, 0), old.version)
        return AppendResult(versions, max(e.position for e in stored if e is not None))

    async def read_stream(
        self,
        stream_id: str,
        from_version: int = 1,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """A stream's events starting at a version, forwards or backwards."""
        recorded = self._streams.get(stream_id, [])
        if backwards:
            found = [e for e in reversed(recorded) if e.version <= from_version]
        else:
            found = [e for e in recorded if e.version >= from_version]
        return found if limit is None else found[:limit]

    async def read_streams(
        self, from_versions: Mapping[str, int]
    ) -> dict[str, list[RecordedEvent]]:
        """Several streams' events, each from its own version."""
        return {
            stream_id: [e for e in self._streams.get(stream_id, []) if e.version >= version]
            for stream_id, version in from_versions.items()
        }

    async def read_all(
        self,
        after_position: int,
        limit: int,
        types: Sequence[str] | None = None,
        wait_seconds: float = 1.0,
    ) -> EventPage:
        """Events after a position in global order; the limit counts events of every type."""
        start = max(after_position, 0)
        taken = self._events[start : start + max(limit, 0)]
        next_position = taken[-1].position if taken else after_position
        wanted = None if types is None else set(types)
        return EventPage([e for e in taken if wanted is None or e.type in wanted], next_position)

    async def head_position(self) -> int:
        """The highest position appended so far."""
        return len(self._events)


class InMemorySnapshotStore(SnapshotStore):
    """Keeps the newest snapshot of each stream, as `PostgresSnapshotStore` does."""

    def __init__(self) -> None:
        self._snapshots: dict[str, Snapshot] = {}

    async def load_many(self, stream_ids: Sequence[str]) -> dict[str, Snapshot]:
        """The newest snapshot of each stream that has one."""
        return {i: _copy(self._snapshots[i]) for i in stream_ids if i in self._snapshots}

    async def save(self, snapshot: Snapshot) -> None:
        """Keep a snapshot unless a newer one is already stored."""
        known = self._snapshots.get(snapshot.stream_id)
        if known is None or known.version < snapshot.version:
            self._snapshots[snapshot.stream_id] = _copy(snapshot)


def _expected(expected: int, actual: int) -> bool:
    """Whether a stream at version `actual` (0: no stream) meets an expected version."""
    if expected == ANY:
        return True
    if expected == NO_STREAM:
        return actual == 0
    return expected == actual


def _recorded(new: NewEvent, stream_id: str, version: int, position: int) -> RecordedEvent:
    return RecordedEvent(
        position=position,
        stream_id=stream_id,
        version=version,
        event_id=new.event_id,
        type=new.type,
        schema_version=new.schema_version,
        data=_json(new.data),
        metadata=_json(new.metadata),
        recorded_at=datetime.now(UTC),
    )


def _copy(snapshot: Snapshot) -> Snapshot:
    return Snapshot(
        snapshot.stream_id,
        snapshot.version,
        snapshot.aggregate_type,
        snapshot.schema_version,
        _json(snapshot.state),
    )


def _json(value: dict[str, Any]) -> dict[str, Any]:
    """What a JSON column gives back: a copy of plain JSON values, never the caller's objects."""
    copied: dict[str, Any] = json.loads(json.dumps(value))
    return copied
