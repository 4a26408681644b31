"""Prometheus exposition: a process's registry, its /metrics text, and a small server for it.

Every process creates its own registry when it starts (never the library's global one), so
what a process exports is exactly what its wiring registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
METRICS_PATH = "/metrics"
REFRESH_WITHIN_SECONDS = 2.0
"""How long a scrape waits for numbers read from the database before it answers without them."""
MAX_REQUEST_BYTES = 8192

Refresh = Callable[[], Awaitable[None]]
"""Brings gauges read from elsewhere (the database, Temporal) up to date before a scrape."""


def new_registry() -> CollectorRegistry:
    """An empty registry for one process."""
    return CollectorRegistry(auto_describe=True)


async def exposition(registry: CollectorRegistry, refreshes: Sequence[Refresh] = ()) -> bytes:
    """The registry in Prometheus' text format, after refreshing what is read on scrape.

    A refresh that fails or takes longer than REFRESH_WITHIN_SECONDS leaves its gauges at
    their last values: a slow database must not make the whole scrape fail.
    """
    for refresh in refreshes:
        try:
            await asyncio.wait_for(refresh(), REFRESH_WITHIN_SECONDS)
        except Exception as error:
            log.info("metrics refresh %s failed: %s", getattr(refresh, "__name__", ""), error)
    return generate_latest(registry)


Labels = tuple[str, ...]
"""A series' label values, in the order of its family's label names."""


class LoopCounter(Collector):
    """A labelled counter kept in plain numbers and exposed, when scraped, as prometheus_client's
    Counter is (`<name>_total` and `<name>_created` by labels).

    For hot paths that run on one event loop (a request, an append): an increment is a dict
    update, without the Counter's locks and child objects. Not for use from several threads:
    what workflow code counts (it runs on the worker's threads) uses prometheus_client's.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        known: Iterable[Labels] = (),
    ) -> None:
        """`known` series are exposed at 0 before their first increment."""
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._series: dict[Labels, list[float]] = {}
        """Each series' [count, created (unix time)]."""
        # Without labels, the one series is there from the start, as the Counter's is.
        for labels in known if self._labelnames else [()]:
            _check_labels(self._labelnames, labels)
            self._series[labels] = [0, time.time()]
        registry.register(self)

    def inc(self, labels: Labels) -> None:
        series = self._series.get(labels)
        if series is None:
            _check_labels(self._labelnames, labels)
            self._series[labels] = [1, time.time()]
        else:
            series[0] += 1

    def value(self, labels: Labels) -> float:
        """The count of a series (0 if it was never increased)."""
        series = self._series.get(labels)
        return series[0] if series is not None else 0

    def describe(self) -> Iterable[Metric]:
        return [CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)]

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for labels, (count, created) in list(self._series.items()):
            family.add_metric(labels, count, created=created)
        return [family]


@dataclass(slots=True)
class _Observed:
    counts: list[int]
    """Observations per bucket (not cumulative), the last one +Inf's."""
    total: float
    created: float


class LoopHistogram(Collector):
    """A labelled histogram kept in plain numbers and exposed, when scraped, as
    prometheus_client's Histogram is (`_bucket` by `le`, `_count`, `_sum`, `_created`).

    As LoopCounter: for one event loop's hot path, an observation is a bisect and two adds.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        bounds = sorted(buckets)
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._bounds = tuple(bounds)
        # The `le` text prometheus_client's Histogram writes ("0.005", "1.0", "+Inf").
        self._le = tuple(floatToGoString(bound) for bound in bounds)  # type: ignore[no-untyped-call]
        self._series: dict[Labels, _Observed] = {}
        if not self._labelnames:
            # Its one series is there from the start, as the Histogram's is.
            self._series[()] = _Observed([0] * len(bounds), 0.0, time.time())
        registry.register(self)

    def observe(self, labels: Labels, value: float) -> None:
        series = self._series.get(labels)
        if series is None:
            _check_labels(self._labelnames, labels)
            series = self._series[labels] = _Observed([0] * len(self._bounds), 0.0, time.time())
        # A value equal to a bound is in that bound's bucket (`le`); NaN is in none.
        if value == value:
            series.counts[bisect_left(self._bounds, value)] += 1
        series.total += value

    def count(self, labels: Labels) -> int:
        """How many values a series observed."""
        series = self._series.get(labels)
        return sum(series.counts) if series is not None else 0

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)]

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for labels, series in list(self._series.items()):
            cumulative, buckets = 0, []
            for le, count in zip(self._le, series.counts, strict=True):
                cumulative += count
                buckets.append((le, float(cumulative)))
            family.add_metric(labels, buckets, series.total)
            named = dict(zip(self._labelnames, labels, strict=True))
            family.samples.append(Sample(f"{self._name}_created", named, series.created))
        return [family]


def _check_labels(names: tuple[str, ...], labels: Labels) -> None:
    if len(labels) != len(names) or not all(isinstance(value, str) for value in labels):
        raise ValueError(f"labels {labels!r} do not match {names!r}")


class PoolUsage(Collector):
    """Connections in use and idle of the process's pools, read when scraped."""

    def __init__(
        self,
        engines: Iterable[tuple[str, AsyncEngine]] = (),
        psycopg_pools: Iterable[tuple[str, Callable[[], Mapping[str, int]]]] = (),
    ) -> None:
        """`psycopg_pools` name each psycopg pool with a function giving its `get_stats()`."""
        self._engines = list(engines)
        self._psycopg_pools = list(psycopg_pools)

    def collect(self) -> Iterable[Metric]:
        connections = GaugeMetricFamily(
            "sagaline_db_pool_connections",
            "Database connections of a pool, by state (in_use, idle).",
            labels=["pool", "state"],
        )
        size = GaugeMetricFamily(
            "sagaline_db_pool_size_connections",
            "Connections a pool keeps open (an engine's pool may open as many again briefly).",
            labels=["pool"],
        )
        waiting = GaugeMetricFamily(
            "sagaline_db_pool_waiting_requests",
            "Callers waiting for a connection of a pool.",
            labels=["pool"],
        )
        for name, engine in self._engines:
            pool = engine.pool
            if isinstance(pool, QueuePool):
                connections.add_metric([name, "in_use"], pool.checkedout())
                connections.add_metric([name, "idle"], pool.checkedin())
                size.add_metric([name], pool.size())
        for name, pool_stats in self._psycopg_pools:
            stats = pool_stats()
            opened = stats.get("pool_size", 0)
            idle = stats.get("pool_available", 0)
            connections.add_metric([name, "in_use"], max(opened - idle, 0))
            connections.add_metric([name, "idle"], idle)
            size.add_metric([name], stats.get("pool_max", 0))
            waiting.add_metric([name], stats.get("requests_waiting", 0))
        return [connections, size, waiting]


class MetricsServer:
    """Serves GET /metrics over HTTP/1.1 on the process's event loop (one request per
    connection), for processes that have no web app of their own, like the worker."""

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        refreshes: Sequence[Refresh] = (),
    ) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._refreshes = list(refreshes)
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the one it was given, or the one chosen for port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._answer, self._host, self._port, limit=MAX_REQUEST_BYTES
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
            method, path = request_target(head)
            if method != "GET":
                status, body, content_type = "405 Method Not Allowed", b"", "text/plain"
            elif path != METRICS_PATH:
                status, body, content_type = "404 Not Found", b"", "text/plain"
            else:
                body = await exposition(self._registry, self._refreshes)
                status, content_type = "200 OK", CONTENT_TYPE
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def request_target(head: bytes) -> tuple[str, str]:
    """The method and path (query string dropped) of an HTTP request's head."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return "", ""
    return parts[0], parts[1].split("?", 1)[0]
