"""Complex event processing: the consumer handler that counts events into pattern windows
and reacts to a match, and the activity that runs its consumer loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity

from activities.following import FollowInput, fenced, heartbeating
from adapters import pattern_windows
from adapters.consumer import ConsumedEvent, EventConsumer, message_span
from adapters.event_store import PostgresEventStore
from adapters.tracing import TRACEPARENT, traceparent_of, with_traceparent
from domain.event_store import ANY, NewEvent, StreamAppend
from domain.events import to_data, type_name
from domain.patterns import Match, Occurrence, Pattern, observe
from domain.users import LockUser, SuspiciousUserActivity, suspicious_activity_stream

PATTERN_CONSUMER = "pattern-detector"
"""The detector's consumer group id and its handler name for processed message ids."""
DETECTION_NAMESPACE = UUID("0b7d8f61-52a4-4f0e-9d43-6f1f3b0f8c27")
DETECTOR_ACTOR = "pattern-detector"

LockUserStarter = Callable[[LockUser], Awaitable[None]]
"""Starts the lock-user workflow for a command; starting it again for the same id is a no-op."""


def lock_command(match: Match) -> LockUser:
    """The lock command a match asks for; its id is derived from the match alone."""
    return LockUser(
        command_id=f"cep/{match.match_id}",
        user_id=match.key,
        reason=(
            f"suspicious activity: {match.pattern}, {len(match.occurrences)} events"
            f" from {match.window_start.isoformat()} to {match.window_end.isoformat()}"
        ),
        actor=DETECTOR_ACTOR,
    )


def detection(match: Match, detected_at: datetime) -> SuspiciousUserActivity:
    """The event recording a match."""
    return SuspiciousUserActivity(
        user_id=match.key,
        detected_at=detected_at,
        event_count=len(match.occurrences),
        window_start=match.window_start,
        window_end=match.window_end,
        pattern=match.pattern,
        event_ids=tuple(o.event_id for o in match.occurrences),
    )


class PatternDetector:
    """Consumer handler: windows in Postgres, and on a match a detection event and a lock.

    Everything it stores (window changes, the detection event) commits with the message's
    processed id. The lock workflow starts before that commit, with an id derived from the
    match, so a retry after a failed commit finds the same workflow instead of a second one.
    """

    def __init__(
        self, store: PostgresEventStore, patterns: Sequence[Pattern], lock_user: LockUserStarter
    ) -> None:
        self._store = store
        self._patterns = patterns
        self._lock_user = lock_user

    @property
    def event_types(self) -> frozenset[str]:
        """The event types its patterns count; its consumer passes over the others."""
        return frozenset().union(*(pattern.event_types for pattern in self._patterns))

    async def __call__(self, conn: AsyncConnection, event: ConsumedEvent) -> None:
        await self.handle_batch(conn, [event])

    async def handle_batch(self, conn: AsyncConnection, events: Sequence[ConsumedEvent]) -> None:
        """Count a batch of events, in order, as one event at a time would.

        Per pattern, every key the batch touches is locked and loaded at once, the batch is
        folded over those windows in memory, and what changed is stored in one DELETE and one
        INSERT; the matches' detection events go in one append.
        """
        matches: list[tuple[int, int, Match, ConsumedEvent]] = []
        for rank, pattern in enumerate(self._patterns):
            counted = [
                (index, key, event)
                for index, event in enumerate(events)
                if (key := pattern.key_of(event.type, event.data)) is not None
            ]
            if not counted:
                continue
            stored = await pattern_windows.lock_and_load_many(
                conn, pattern.name, {key for _, key, _ in counted}
            )
            windows = {key: list(window) for key, window in stored.items()}
            for index, key, event in counted:
                occurrence = Occurrence(event.recorded_at, event.event_id)
                window = windows[key]
                seen = observe(pattern, key, window, occurrence)
                if seen.remove:
                    window = windows[key] = [o for o in window if o not in seen.remove]
                if seen.keep:
                    window.append(occurrence)
                if seen.match is not None:
                    matches.append((index, rank, seen.match, event))
            removed: dict[str, set[Occurrence]] = {}
            added: dict[str, set[Occurrence]] = {}
            for key, window in windows.items():
                before, after = set(stored[key]), set(window)
                if before != after:
                    removed[key] = before - after
                    added[key] = after - before
            await pattern_windows.change_many(conn, pattern.name, removed, added)
        if matches:
            matches.sort(key=lambda found: found[:2])
            await self._react(conn, [(match, event) for _, _, match, event in matches])

    async def _react(
        self, conn: AsyncConnection, matches: Sequence[tuple[Match, ConsumedEvent]]
    ) -> None:
        """Append the matches' detection events (one append) and start their lock commands.

        Each match's detection and lock are in the trace of the message that completed it
        (`message_span`), when it carries one and tracing is on, even inside a batch."""
        spans = [message_span(event) for _, event in matches]
        try:
            detections: dict[str, list[NewEvent]] = {}
            for (match, event), span in zip(matches, spans, strict=True):
                found = detection(match, event.recorded_at)
                metadata: dict[str, Any] = {
                    "actor": DETECTOR_ACTOR,
                    "causation_id": match.occurrences[-1].event_id,
                }
                if span is None:
                    with_traceparent(metadata)
                else:
                    metadata[TRACEPARENT] = traceparent_of(span)
                detections.setdefault(suspicious_activity_stream(match.key), []).append(
                    NewEvent(
                        uuid5(DETECTION_NAMESPACE, match.match_id),
                        type_name(found),
                        to_data(found),
                        metadata,
                    )
                )
            await self._store.append_in(
                conn, *(StreamAppend(stream, found, ANY) for stream, found in detections.items())
            )
            for (match, _), span in zip(matches, spans, strict=True):
                if span is None:
                    await self._lock_user(lock_command(match))
                    continue
                with trace.use_span(span, end_on_exit=True):
                    await self._lock_user(lock_command(match))
        finally:
            for span in spans:
                if span is not None and span.is_recording():
                    span.end()

    async def sweep(self, engine: AsyncEngine) -> int:
        """Delete the windows of keys that went quiet: older than the newest event by 2 windows.

        Expiry per key happens as its events arrive; this catches keys with no later event.
        The extra window leaves room for events still arriving out of order.
        """
        swept = 0
        async with engine.begin() as conn:
            for pattern in self._patterns:
                newest = await pattern_windows.newest(conn, pattern.name)
                if newest is not None:
                    before = newest - 2 * pattern.window
                    swept += await pattern_windows.sweep(conn, pattern.name, before)
        return swept


class PatternActivities:
    """Activities of the pattern-detector singleton."""

    def __init__(
        self,
        engine: AsyncEngine,
        detector: PatternDetector,
        consumer: Callable[[PatternDetector], EventConsumer],
        database_url: str,
        fence: str = PATTERN_CONSUMER,
    ) -> None:
        self._engine = engine
        self._detector = detector
        self._consumer = consumer
        self._database_url = database_url
        self._fence = fence

    @activity.defn
    async def detect_patterns(self, params: FollowInput) -> int:
        """Consume the event topic until the run time passes; returns how many messages.

        Only while holding the detector's fence (`fenced`): a second instance joining the
        consumer group would split its partitions and rebalance it for nothing."""
        handled = 0

        def progress(count: int) -> None:
            nonlocal handled
            handled = count

        async def consume() -> int:
            await self._detector.sweep(self._engine)
            consumer = self._consumer(self._detector)
            # Started inside the try: a cancellation while joining the group (a heartbeat
            # timeout after a worker died) must still leave the group, or its partitions
            # stay unread.
            try:
                await consumer.start()
                return await consumer.run(params.run_seconds, progress=progress)
            finally:
                await consumer.stop()

        async with heartbeating(lambda: handled):
            return await fenced(self._database_url, self._fence, consume)
