"""A worker's metrics: its registry and families, its /metrics server, the Temporal SDK's."""

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
from runtime.config import Settings
from runtime.saga_metrics import SagaMetrics


class WorkerMetrics:
    """Every metric family a worker exports, in one registry made when the worker starts."""

    def __init__(self) -> None:
        self.registry: CollectorRegistry = new_registry()
        self.appends = AppendMetrics(self.registry)
        self.sagas = SagaMetrics(self.registry)
        self.consumers = ConsumerMetrics(self.registry)

    def watch_pools(self, engine: AsyncEngine, store: PostgresEventStore) -> None:
        """Export the usage of the worker's database pools and of group commit."""
        self.registry.register(
            PoolUsage([("worker", engine)], [("appends", store.appends.pool_stats)])
        )
        self.registry.register(AppendGroups(store.appends))


def temporal_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime serving the SDK's metrics (None, the default runtime, when off).

    The SDK serves them itself, on their own port; durations are in seconds, as ours are.
    """
    served = {port for port, _ in settings.worker_metrics_ports()}
    if settings.worker_temporal_metrics_port not in served:
        return None
    address = f"{settings.worker_metrics_host}:{settings.worker_temporal_metrics_port}"
    prometheus = PrometheusConfig(bind_address=address, durations_as_seconds=True)
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))


@asynccontextmanager
async def serving_metrics(settings: Settings, metrics: WorkerMetrics | None) -> AsyncIterator[None]:
    """Serve the worker's /metrics while the block runs (nothing when its port is 0 or
    metrics are off)."""
    served = {port for port, _ in settings.worker_metrics_ports()}
    if metrics is None or settings.worker_metrics_port not in served:
        yield
        return
    server = MetricsServer(
        metrics.registry, settings.worker_metrics_host, settings.worker_metrics_port
    )
    await server.start()
    try:
        yield
    finally:
        await server.stop()
