"""Serving a Temporal worker process: what `sagaline worker` and `sagaline followers` share."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import Worker

from adapters.database import create_engine
from adapters.event_store import PostgresEventStore
from adapters.temporal import connect
from runtime.config import Settings, WorkerRole
from runtime.ports import ensure_port_free
from runtime.startup import freeze_startup_objects
from runtime.worker_metrics import serving_metrics, temporal_runtime


class Exported(Protocol):
    """A process's metric families, in the registry its /metrics serves."""

    @property
    def registry(self) -> CollectorRegistry: ...


M = TypeVar("M", bound=Exported)


async def serve(
    settings: Settings,
    role: WorkerRole,
    *,
    task_queue: str,
    pool_size: int,
    metrics: Callable[[], M] | None,
    open_store: Callable[[AsyncEngine, M | None], PostgresEventStore],
    create_worker: Callable[[Client, AsyncEngine, PostgresEventStore, M | None], Worker],
    log: logging.Logger,
    on_start: Callable[[Client, AsyncEngine], Awaitable[None]] | None = None,
) -> None:
    """Run `role`'s worker on `task_queue` until cancelled.

    A metrics port of the role that is taken stops it before it starts, with PortInUse
    naming the setting that moves the port. Otherwise: a database pool of `pool_size`
    connections (pool plus overflow), `metrics` made when metrics are on, the store
    `open_store` makes over the pool (watched by those metrics), a Temporal client, the worker
    `create_worker` builds from them, and /metrics served while it runs. Once start-up's
    objects are frozen, `on_start` runs before the worker polls. The store and the pool are
    closed however the run ends.
    """
    served = settings.process_metrics(role)
    for port, variable in served.ports():
        ensure_port_free(served.host, port, variable)
    engine = create_engine(settings.require_database_url(), pool_size=pool_size // 2)
    measured = metrics() if metrics is not None else None
    store = open_store(engine, measured)
    try:
        client = await connect(
            settings.require_temporal_address(),
            settings.temporal_namespace,
            runtime=temporal_runtime(served),
        )
        worker = create_worker(client, engine, store, measured)
        async with serving_metrics(served, measured.registry if measured else None):
            freeze_startup_objects()
            if on_start is not None:
                await on_start(client, engine)
            log.info("%s polling task queue %s", role, task_queue)
            await worker.run()
    finally:
        await store.close()
        await engine.dispose()
