"""The worker processes' metrics: their registries and families, /metrics, the Temporal SDK's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from adapters.consumer_metrics import ConsumerMetrics
from adapters.event_store import PostgresEventStore
from adapters.metrics import MetricsServer, PoolUsage, new_registry
from adapters.store_metrics import AppendGroups, AppendMetrics
from runtime.config import ProcessMetrics
from runtime.saga_metrics import SagaMetrics


class WorkerMetrics:
    """Every metric family the saga worker exports, in one registry made when it starts."""

    def __init__(self) -> None:
        self.registry: CollectorRegistry = new_registry()
        self.appends = AppendMetrics(self.registry)
        self.sagas = SagaMetrics(self.registry)

    def watch_pools(self, engine: AsyncEngine, store: PostgresEventStore) -> None:
        """Export the usage of the worker's database pools and of group commit."""
        self.registry.register(
            PoolUsage([("worker", engine)], [("appends", store.appends.pool_stats)])
        )
        self.registry.register(AppendGroups(store.appends))


class FollowerMetrics:
    """Every metric family the followers process exports: the pattern detector's consumer
    and the database pool the followers share."""

    def __init__(self) -> None:
        self.registry: CollectorRegistry = new_registry()
        self.consumers = ConsumerMetrics(self.registry)

    def watch_pool(self, engine: AsyncEngine) -> None:
        """Export the usage of the followers' database pool."""
        self.registry.register(PoolUsage([("followers", engine)]))


def temporal_runtime(process: ProcessMetrics) -> Runtime | None:
    """A Temporal runtime serving the SDK's metrics (None, the default runtime, when off).

    The SDK serves them itself, on their own port; durations are in seconds, as ours are.
    """
    if not process.serves_temporal():
        return None
    address = f"{process.host}:{process.temporal_port}"
    prometheus = PrometheusConfig(bind_address=address, durations_as_seconds=True)
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))


@asynccontextmanager
async def serving_metrics(
    process: ProcessMetrics, registry: CollectorRegistry | None
) -> AsyncIterator[None]:
    """Serve the process's /metrics while the block runs (nothing when its port is 0 or
    metrics are off)."""
    if registry is None or not process.serves():
        yield
        return
    server = MetricsServer(registry, process.host, process.port)
    await server.start()
    try:
        yield
    finally:
        await server.stop()
