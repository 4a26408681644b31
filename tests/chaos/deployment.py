"""sagaline run as a deployment runs it: every part its own process, each one killable.

Postgres (embedded, so the suite owns its cluster), the Temporal dev server (persisted to its
database file) and the Tansu broker (memory-only) run as separate processes, then
`sagaline migrate`, N `sagaline worker`, F `sagaline followers` and M `sagaline api`
processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from runtime.embedded.broker import EmbeddedBroker
from runtime.embedded.postgres import CHILD_ENV, EmbeddedPostgres, bin_dir
from runtime.embedded.process import ChildProcess, ComponentStartError, http_answers
from runtime.embedded.temporal import EmbeddedTemporal
from runtime.launcher import LOCALHOST, PROJECT_ROOT, sagaline_command, sagaline_process
from runtime.ports import free_ports

CLIENT_TOKEN = "chaos-client-token"
OPERATOR_TOKEN = "chaos-operator-token"
READY_WITHIN = 180.0
"""Bound of every start and restart: generous, the machine may be busy."""
STOP_GRACE = 20.0
PG_CTL_WITHIN = 60.0


class Deployment:
    """The whole system in `data_dir`: `workers` workers, `followers` followers processes
    and `apis` APIs."""

    def __init__(
        self,
        data_dir: Path,
        *,
        workers: int = 2,
        followers: int = 2,
        apis: int = 2,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir.absolute()
        ports = free_ports(4 + apis + 2 * (workers + followers))
        self.postgres = EmbeddedPostgres(self.data_dir, ports[0])
        self.temporal = EmbeddedTemporal(
            self.data_dir / "temporal", ports[1], ports[3], headless=True
        )
        self.broker = EmbeddedBroker(self.data_dir / "kafka", ports[2])
        self.api_ports = ports[4 : 4 + apis]
        metrics_ports = ports[4 + apis :]
        self.settings = dict(settings or {})
        self.session_key = secrets.token_urlsafe(32)
        logs = self.data_dir / "logs"
        self.workers = [
            sagaline_process(
                "worker",
                logs / f"worker-{n + 1}.log",
                self._worker_env("WORKER", metrics_ports[2 * n], metrics_ports[2 * n + 1]),
            )
            for n in range(workers)
        ]
        metrics_ports = metrics_ports[2 * workers :]
        self.followers = [
            sagaline_process(
                "followers",
                logs / f"followers-{n + 1}.log",
                self._worker_env("FOLLOWERS", metrics_ports[2 * n], metrics_ports[2 * n + 1]),
            )
            for n in range(followers)
        ]
        self.apis = [
            sagaline_process("api", logs / f"api-{n + 1}.log", self._env(port))
            for n, port in enumerate(self.api_ports)
        ]

    @property
    def database_url(self) -> str:
        return self.postgres.url

    @property
    def graphql_urls(self) -> list[str]:
        return [f"http://{LOCALHOST}:{port}/graphql" for port in self.api_ports]

    def _worker_env(self, role: str, metrics: int, temporal_metrics: int) -> dict[str, str]:
        """A worker's or followers process's environment (`role` WORKER or FOLLOWERS): metrics
        on ports of its own, kept across its restarts."""
        return {
            **self._env(),
            f"SAGALINE_{role}_METRICS_PORT": str(metrics),
            f"SAGALINE_{role}_TEMPORAL_METRICS_PORT": str(temporal_metrics),
        }

    def _env(self, api_port: int | None = None) -> dict[str, str]:
        """Our environment without SAGALINE_* variables, plus where every component runs."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAGALINE_")}
        env.update(
            {
                "SAGALINE_DATA_DIR": str(self.data_dir),
                "SAGALINE_DATABASE_URL": self.postgres.url,
                "SAGALINE_TEMPORAL_ADDRESS": self.temporal.address,
                "SAGALINE_KAFKA_BOOTSTRAP": self.broker.bootstrap,
                "SAGALINE_API_HOST": LOCALHOST,
                "SAGALINE_API_TOKENS": f"{CLIENT_TOKEN}:client,{OPERATOR_TOKEN}:operator",
                "SAGALINE_SESSION_KEY": self.session_key,
                **self.settings,
                "PYTHONUNBUFFERED": "1",
            }
        )
        if api_port is not None:
            env["SAGALINE_API_PORT"] = str(api_port)
        return env

    async def start(self) -> None:
        """Start the components together, migrate, then the workers, followers and APIs."""
        await asyncio.gather(
            self.postgres.start(READY_WITHIN),
            self.temporal.start(READY_WITHIN),
            self.broker.start(READY_WITHIN),
        )
        await asyncio.to_thread(self._migrate)
        for worker in [*self.workers, *self.followers]:
            worker.start()
        await asyncio.gather(*(self.start_api(n) for n in range(len(self.apis))))

    def _migrate(self) -> None:
        result = subprocess.run(
            sagaline_command("migrate"),
            cwd=PROJECT_ROOT,
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=READY_WITHIN,
            check=False,
        )
        if result.returncode != 0:
            raise ComponentStartError(f"sagaline migrate failed:\n{result.stdout}{result.stderr}")

    async def stop(self) -> None:
        """Stop everything, the APIs and workers first; a frozen broker is thawed first."""
        for child in [*self.apis, *self.workers, *self.followers]:
            with contextlib.suppress(Exception):
                await child.stop(STOP_GRACE)
        for component in (self.broker, self.temporal, self.postgres):
            with contextlib.suppress(Exception):
                await component.stop()

    def died(self) -> list[str]:
        """The processes that exited although nothing stopped them (empty when all run)."""
        parts: dict[str, int | None] = {
            "postgres": self.postgres.returncode,
            "temporal": self.temporal.returncode,
            "broker": self.broker.returncode,
        }
        for n, worker in enumerate(self.workers):
            parts[f"worker-{n + 1}"] = worker.returncode
        for n, follower in enumerate(self.followers):
            parts[f"followers-{n + 1}"] = follower.returncode
        for n, api in enumerate(self.apis):
            parts[f"api-{n + 1}"] = api.returncode
        return [name for name, code in parts.items() if code is not None]

    # The faults. Each returns once the fault is in place.

    async def kill(self, child: ChildProcess) -> None:
        """SIGKILL a worker, a followers process or an API, as a crash would."""
        await child.kill()

    async def restart(self, child: ChildProcess) -> None:
        """Start a worker or followers process again (stopping it first if it runs)."""
        await child.stop(STOP_GRACE)
        child.start()

    async def start_api(self, n: int) -> None:
        api = self.apis[n]
        await api.stop(STOP_GRACE)
        api.start()
        port = self.api_ports[n]
        await api.wait_ready(lambda: http_answers(LOCALHOST, port, "/graphql"), within=READY_WITHIN)

    def freeze_broker(self) -> None:
        os.kill(self.broker.pid, signal.SIGSTOP)

    def thaw_broker(self) -> None:
        os.kill(self.broker.pid, signal.SIGCONT)

    async def kill_broker(self) -> None:
        """SIGKILL the broker: memory-only, it has lost every topic."""
        os.kill(self.broker.pid, signal.SIGKILL)
        await _exited(lambda: self.broker.returncode, "broker")
        await self.broker.stop()

    async def start_broker(self) -> None:
        await self.broker.start(READY_WITHIN)

    async def restart_postgres_immediately(self) -> None:
        """`pg_ctl stop -m immediate` (no checkpoint: crash recovery on start), then start it.

        The suite starts the server again itself rather than `pg_ctl restart`, so the new
        postmaster is its child like the first one.
        """
        owner = self.postgres.pgdata.stat()
        as_owner = os.geteuid() == 0
        command = [str(bin_dir() / "pg_ctl"), "stop", "-D", str(self.postgres.pgdata)]
        result = await asyncio.to_thread(
            subprocess.run,
            [*command, "-m", "immediate", "-t", str(int(PG_CTL_WITHIN))],
            env=CHILD_ENV,
            capture_output=True,
            text=True,
            timeout=PG_CTL_WITHIN + 10,
            user=owner.st_uid if as_owner else None,
            group=owner.st_gid if as_owner else None,
            extra_groups=[] if as_owner else None,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl stop -m immediate failed: {result.stdout}{result.stderr}")
        await _exited(lambda: self.postgres.returncode, "postgres")
        await self.postgres.stop()
        await self.postgres.start(READY_WITHIN)

    async def stop_temporal(self) -> None:
        await self.temporal.stop()

    async def start_temporal(self) -> None:
        await self.temporal.start(READY_WITHIN)


async def _exited(returncode: Callable[[], int | None], name: str, within: float = 30.0) -> None:
    """Wait until a killed process has exited."""
    deadline = time.monotonic() + within
    while returncode() is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not exit within {within:.0f}s")
        await asyncio.sleep(0.05)
