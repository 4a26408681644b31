"""Prometheus exposition: a process's registry, its /metrics text, and a small server for it.

Every process creates its own registry when it starts (never the library's global one), so
what a process exports is exactly what its wiring registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
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
