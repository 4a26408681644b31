"""Session-wide services for the tests, each started on free ports the first time it is used.

Markers follow the folder: tests/unit -> unit, tests/integration -> integration, and so on.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The project's packages live at the repository root; make them importable even when the
# project is not installed into the environment running pytest.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

if TYPE_CHECKING:
    from runtime.config import Settings
    from runtime.embedded.broker import EmbeddedBroker
    from runtime.embedded.temporal import EmbeddedTemporal

TEST_KINDS = ("unit", "integration", "workflows", "e2e", "chaos")
# A Postgres already running on this machine (trust auth) is faster than starting one.
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with the kind named by its folder under tests/."""
    tests_dir = Path(__file__).resolve().parent
    for item in items:
        try:
            folder = item.path.resolve().relative_to(tests_dir).parts[0]
        except (ValueError, IndexError):
            continue
        if folder in TEST_KINDS:
            item.add_marker(getattr(pytest.mark, folder))


@pytest.fixture(scope="session")
def service_dir() -> Iterator[Path]:
    """A scratch directory for the session's services.

    Under /tmp rather than pytest's 0700 base directory: embedded Postgres runs as an
    unprivileged account when we are root and must be able to reach its data.
    """
    path = Path(tempfile.mkdtemp(prefix="sagaline-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
async def database_url(service_dir: Path) -> AsyncIterator[str]:
    """A migrated database of its own: on the local Postgres if reachable, else embedded."""
    from runtime.embedded.postgres import (
        EmbeddedPostgres,
        create_database,
        drop_database,
        server_reachable,
    )
    from runtime.migrate import migrate
    from runtime.ports import free_port

    if await server_reachable(LOCAL_POSTGRES):
        name = f"sagaline_test_{uuid.uuid4().hex[:12]}"
        await create_database(LOCAL_POSTGRES, name)
        url = LOCAL_POSTGRES.rsplit("/", 1)[0] + f"/{name}"
        try:
            await asyncio.to_thread(migrate, url)
            yield url
        finally:
            await drop_database(LOCAL_POSTGRES, name)
        return

    postgres = EmbeddedPostgres(service_dir / "postgres", free_port())
    await postgres.start()
    try:
        await asyncio.to_thread(migrate, postgres.url)
        yield postgres.url
    finally:
        await postgres.stop()


@pytest.fixture(scope="session")
async def temporal_server(service_dir: Path) -> AsyncIterator[EmbeddedTemporal]:
    """An in-memory, headless Temporal dev server with the search attributes registered."""
    from runtime.embedded.temporal import EmbeddedTemporal
    from runtime.ports import free_ports

    port, ui_port = free_ports(2)
    server = EmbeddedTemporal(
        service_dir / "temporal", port, ui_port, in_memory=True, headless=True
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="session")
def temporal_address(temporal_server: EmbeddedTemporal) -> str:
    """Frontend address of the session's Temporal dev server, `127.0.0.1:<port>`."""
    return temporal_server.address


@pytest.fixture(scope="session")
async def kafka_broker(service_dir: Path) -> AsyncIterator[EmbeddedBroker]:
    """The session's Tansu broker; `kafka_broker.pid` lets a test pause it (SIGSTOP)."""
    from runtime.embedded.broker import EmbeddedBroker
    from runtime.ports import free_port

    broker = EmbeddedBroker(service_dir / "kafka", free_port())
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: EmbeddedBroker) -> str:
    """Bootstrap servers of the session's broker, `127.0.0.1:<port>`."""
    return kafka_broker.bootstrap


@pytest.fixture(scope="session")
def settings(
    database_url: str,
    temporal_address: str,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    """Settings pointing at the session's services, with a free API port."""
    from runtime.config import Settings
    from runtime.ports import free_port

    return Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        database_url=database_url,
        temporal_address=temporal_address,
        kafka_bootstrap=kafka_bootstrap,
        api_port=free_port(),
        # The workers the tests start check every workflow for non-deterministic calls;
        # the worker process runs them unsandboxed (see `runtime.worker.workflow_runner`).
        workflow_sandbox=True,
    )
