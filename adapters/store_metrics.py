"""Metrics of the event store's appends: how many, how long, how many conflicts, how big."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.event_store import APPEND_CONNECTIONS, PostgresEventStore
from adapters.group_commit import EventIdTaken, GroupCommit
from adapters.metrics import LoopCounter, LoopHistogram
from domain.event_store import (
    AppendResult,
    EventIdConflict,
    StreamAppend,
    UniqueKeyTaken,
    WrongExpectedVersion,
)

CONFLICTS: tuple[type[Exception], ...] = (
    WrongExpectedVersion,
    UniqueKeyTaken,
    EventIdConflict,
    EventIdTaken,
)
"""Refusals of an append by the store's rules; anything else raised is an error."""
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
EVENTS_BUCKETS = (1, 2, 3, 5, 10, 20, 50, 100, 500)
OK, CONFLICT, ERROR = ("ok",), ("conflict",), ("error",)


class AppendMetrics:
    """The append metric families of one process, registered in its registry; appends are
    counted on the process's event loop."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.appends = LoopCounter(
            "sagaline_appends",
            "Appends to the event store by outcome (ok, conflict, error).",
            ["outcome"],
            registry,
            known=(OK, CONFLICT, ERROR),
        )
        self.conflicts = LoopCounter(
            "sagaline_append_conflicts",
            "Appends refused by the store's rules, by refusal (WrongExpectedVersion, ...).",
            ["type"],
            registry,
        )
        self.duration = LoopHistogram(
            "sagaline_append_duration_seconds",
            "Time from asking for an append to its outcome, group commit wait included.",
            [],
            DURATION_BUCKETS,
            registry,
        )
        self.events = LoopHistogram(
            "sagaline_append_events",
            "Events written by one successful append.",
            [],
            EVENTS_BUCKETS,
            registry,
        )

    async def measure(
        self, streams: Sequence[StreamAppend], append: Callable[[], Awaitable[AppendResult]]
    ) -> AppendResult:
        """Run one append, counting its outcome, time and size."""
        started = time.perf_counter()
        try:
            result = await append()
        except CONFLICTS as refusal:
            self.appends.inc(CONFLICT)
            self.conflicts.inc((type(refusal).__name__,))
            raise
        except Exception:
            self.appends.inc(ERROR)
            raise
        finally:
            self.duration.observe((), time.perf_counter() - started)
        self.appends.inc(OK)
        self.events.observe((), sum(len(stream.events) for stream in streams))
        return result


class MeasuredEventStore(PostgresEventStore):
    """The Postgres event store, counting its appends into AppendMetrics.

    `append_in` (inside a caller's transaction) is not measured: its outcome is only known
    when the caller's transaction commits.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        metrics: AppendMetrics,
        append_connections: int = APPEND_CONNECTIONS,
    ) -> None:
        super().__init__(engine, append_connections)
        self._metrics = metrics

    async def append(self, *streams: StreamAppend) -> AppendResult:
        return await self._metrics.measure(
            streams, lambda: super(MeasuredEventStore, self).append(*streams)
        )

    async def append_with(
        self, write: Callable[[AsyncConnection], Awaitable[None]], *streams: StreamAppend
    ) -> AppendResult:
        return await self._metrics.measure(
            streams, lambda: super(MeasuredEventStore, self).append_with(write, *streams)
        )


class AppendGroups(Collector):
    """Group commit's counts (groups sent, appends they carried, appends queued), on scrape."""

    def __init__(self, appends: GroupCommit) -> None:
        self._appends = appends

    def collect(self) -> Iterable[Metric]:
        groups = CounterMetricFamily(
            "sagaline_append_groups",
            "Statements group commit sent; appends per group is "
            "sagaline_append_grouped_appends_total over this.",
            value=self._appends.groups_flushed,
        )
        grouped = CounterMetricFamily(
            "sagaline_append_grouped_appends",
            "Appends group commit sent, in any group.",
            value=self._appends.appends_flushed,
        )
        waiting = GaugeMetricFamily(
            "sagaline_append_queue_appends",
            "Appends waiting for a free connection of group commit.",
            value=self._appends.waiting,
        )
        return [groups, grouped, waiting]
