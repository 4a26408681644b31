"""The whole stack, started as `sagaline up` would be, for GraphQL-over-HTTP tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from runtime.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_WITHIN = 90.0
STOP_WITHIN = 60.0
LOG_TAIL_LINES = 60
# Short, so a `consistentWith` that can never be reached fails fast.
CONSISTENCY_TIMEOUT_SECONDS = 1
# How long a mutation waits for its workflow: well above a command's usual fraction of a
# second, and below an activity's 10 s timeout, so a test can hold a command up past it.
COMMAND_TIMEOUT_SECONDS = 5
# A failing compensation parks its saga after two attempts (about half a second), not eight.
COMPENSATION_ATTEMPTS = 2
CLIENT_TOKEN = "e2e-client-token"
OPERATOR_TOKEN = "e2e-operator-token"


def distinct_free_ports(count: int) -> list[int]:
    """`count` different ports nobody listens on right now."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@dataclass
class Stack:
    """A `sagaline up` subprocess with every component embedded, on its own free ports."""

    data_dir: Path
    api_port: int
    postgres_port: int
    temporal_port: int
    temporal_ui_port: int
    kafka_port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def graphql_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/graphql"

    @property
    def temporal_ui_url(self) -> str:
        return f"http://127.0.0.1:{self.temporal_ui_port}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.postgres_port}/sagaline"

    def env(self) -> dict[str, str]:
        """Our environment without any SAGALINE_* setting, plus this stack's data dir and ports.

        No SAGALINE_DATABASE_URL, SAGALINE_TEMPORAL_ADDRESS or SAGALINE_KAFKA_BOOTSTRAP, so
        `up` starts every component itself.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAGALINE_")}
        env.update(
            {
                "SAGALINE_DATA_DIR": str(self.data_dir),
                "SAGALINE_API_HOST": "127.0.0.1",
                "SAGALINE_API_PORT": str(self.api_port),
                "SAGALINE_POSTGRES_PORT": str(self.postgres_port),
                "SAGALINE_TEMPORAL_PORT": str(self.temporal_port),
                "SAGALINE_TEMPORAL_UI_PORT": str(self.temporal_ui_port),
                "SAGALINE_KAFKA_PORT": str(self.kafka_port),
                "SAGALINE_CONSISTENCY_TIMEOUT_SECONDS": str(CONSISTENCY_TIMEOUT_SECONDS),
                "SAGALINE_COMMAND_TIMEOUT_SECONDS": str(COMMAND_TIMEOUT_SECONDS),
                "SAGALINE_COMPENSATION_ATTEMPTS": str(COMPENSATION_ATTEMPTS),
                "SAGALINE_API_TOKENS": f"{CLIENT_TOKEN}:client,{OPERATOR_TOKEN}:operator",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def start(self) -> None:
        """Run `up` and wait, bounded, until GraphQL answers; fail with the log tail if not."""
        assert self.process is None or self.process.poll() is not None, "already running"
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} sagaline up\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "runtime.cli", "up"],
                cwd=REPO_ROOT,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                pytest.fail(f"`sagaline up` exited with status {code}:\n{self.log_tail()}")
            if self._graphql_answers():
                return
            time.sleep(0.5)
        self.stop()
        pytest.fail(f"GraphQL did not answer within {READY_WITHIN:g}s:\n{self.log_tail()}")

    def stop(self) -> int:
        """SIGTERM `up` and wait for its exit status; SIGKILL its process group if it hangs."""
        process = self.process
        assert process is not None, "never started"
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_WITHIN)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return process.returncode

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of `up`'s output and of each component's log."""
        paths = [self.log_path, *sorted((self.data_dir / "logs").glob("*.log"))]
        parts = []
        for path in paths:
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"==> {path} <==\n" + "\n".join(text))
        return "\n".join(parts)

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, token: str = CLIENT_TOKEN
    ) -> dict[str, Any]:
        """POST a GraphQL request as a caller and return the whole body (data and errors)."""
        response = httpx.post(
            self.graphql_url,
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def data(
        self, query: str, variables: dict[str, Any] | None = None, token: str = CLIENT_TOKEN
    ) -> dict[str, Any]:
        """The `data` of a GraphQL response that must have no errors."""
        body = self.graphql(query, variables, token)
        assert not body.get("errors"), body
        data: dict[str, Any] = body["data"]
        return data

    def sql(self, statement: str, *params: object) -> Any:
        """The first column of the first row of a query against the embedded Postgres."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute(statement, params).fetchone()
        assert row is not None
        return row[0]

    def _graphql_answers(self) -> bool:
        try:
            response = httpx.post(
                self.graphql_url,
                json={"query": "{ __typename }"},
                headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
                timeout=2,
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 200


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """One running stack per test module, stopped and wiped afterwards.

    The data dir is under /tmp, not pytest's 0700 tmp_path: embedded Postgres runs as an
    unprivileged account and must be able to traverse to its data.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="sagaline-e2e-"))
    api, postgres, temporal, temporal_ui, kafka = distinct_free_ports(5)
    running = Stack(
        data_dir=data_dir,
        api_port=api,
        postgres_port=postgres,
        temporal_port=temporal,
        temporal_ui_port=temporal_ui,
        kafka_port=kafka,
        log_path=Path(f"{data_dir}.log"),
    )
    try:
        running.start()
        yield running
    finally:
        if running.process is not None:
            running.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        running.log_path.unlink(missing_ok=True)
