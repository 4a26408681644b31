"""Complex event processing: patterns over the event stream and the pure matching rules.

A pattern counts events of some types sharing a key (e.g. a user id) and matches when
`count` of them fall within `window` of each other, measured on event time (when the event
was recorded), never on arrival time. Events may arrive out of order: an event older than
the newest one seen for its key still counts while it is within `window` of that newest one;
an older one is late and ignored. Occurrences that can no longer be part of any match expire.
The occurrences of a match are consumed, so the next match needs `count` new events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from domain.events import JsonDict

Condition = Callable[[JsonDict], bool]


@dataclass(frozen=True)
class Pattern:
    """`count` events of `event_types` with the same `key_field` within `window`."""

    name: str
    event_types: frozenset[str]
    key_field: str
    count: int
    window: timedelta
    condition: Condition | None = None

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"pattern {self.name}: count must be at least 1")
        if self.window <= timedelta(0):
            raise ValueError(f"pattern {self.name}: window must be positive")

    def key_of(self, event_type: str, data: JsonDict) -> str | None:
        """The key an event counts under, or None when the pattern ignores the event."""
        if event_type not in self.event_types:
            return None
        key = data.get(self.key_field)
        if not isinstance(key, str) or not key:
            return None
        if self.condition is not None and not self.condition(data):
            return None
        return key


class Occurrence(NamedTuple):
    """One counted event: when it happened (event time) and its id; ordered by time, then
    id. A named tuple: windows compare, sort and hash many of them per batch."""

    event_time: datetime
    event_id: str


@dataclass(frozen=True)
class Match:
    """The occurrences that completed a pattern for one key, oldest first."""

    pattern: str
    key: str
    occurrences: tuple[Occurrence, ...]

    @property
    def window_start(self) -> datetime:
        return self.occurrences[0].event_time

    @property
    def window_end(self) -> datetime:
        return self.occurrences[-1].event_time

    @property
    def match_id(self) -> str:
        """Stable identity of the match: the same events always give the same id."""
        return f"{self.pattern}/{self.key}/{self.occurrences[0].event_id}"


class Observation(NamedTuple):
    """What one new occurrence does to a key's window state (a named tuple: one per event)."""

    keep: bool
    """Whether to store the new occurrence (False when late, a repeat, or consumed)."""
    remove: tuple[Occurrence, ...]
    """Stored occurrences to delete: expired or consumed by the match."""
    match: Match | None


def observe(
    pattern: Pattern, key: str, stored: Sequence[Occurrence], new: Occurrence
) -> Observation:
    """Add `new` to a key's stored occurrences: expiries, and the match it completes if any."""
    # Plain loops: this runs once per counted event, over a window of a few occurrences.
    newest = new.event_time
    for o in stored:
        if o.event_id == new.event_id:
            return _REPEAT
        if o.event_time > newest:
            newest = o.event_time
    horizon = newest - pattern.window
    expired = tuple(o for o in stored if o.event_time < horizon)
    if new.event_time < horizon:
        return Observation(False, expired, None)
    live = [o for o in stored if o.event_time >= horizon]
    if len(live) + 1 < pattern.count:
        return Observation(True, expired, None)
    live.append(new)
    live.sort()
    run = _earliest_run_with(live, new, pattern.count, pattern.window)
    if run is None:
        return Observation(True, expired, None)
    consumed = tuple(o for o in run if o != new)
    return Observation(False, expired + consumed, Match(pattern.name, key, run))


_REPEAT = Observation(keep=False, remove=(), match=None)
"""A repeat of an occurrence the window holds: nothing changes."""


def _earliest_run_with(
    live: Sequence[Occurrence], new: Occurrence, count: int, window: timedelta
) -> tuple[Occurrence, ...] | None:
    """The first `count` consecutive occurrences spanning at most `window` that include `new`."""
    at = live.index(new)
    for start in range(max(0, at - count + 1), min(at, len(live) - count) + 1):
        run = live[start : start + count]
        if run[-1].event_time - run[0].event_time <= window:
            return tuple(run)
    return None


SUSPICIOUS_LOGINS = Pattern(
    name="suspicious-logins",
    event_types=frozenset({"UserLoginFailed"}),
    key_field="user_id",
    count=3,
    window=timedelta(minutes=5),
)
"""Three failed sign-ins for one user within five minutes."""

PATTERNS: tuple[Pattern, ...] = (SUSPICIOUS_LOGINS,)
