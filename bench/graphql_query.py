"""GraphQL `account(id)` queries per second over HTTP, against a constant resolver.

The project: the whole stack as `python -m runtime.cli up` starts it (embedded Postgres,
Temporal, Kafka broker, worker and API, every one on a free port, data under a temp dir in
/tmp), with one user and one account created through GraphQL. The API process is the real
one: uvicorn serving `api.app.create_app`, whose `account` resolver reads the accounts read
model in Postgres.

Baseline: this script run again as a child process with `--serve-baseline PORT`. It serves a
Starlette + Strawberry app through uvicorn with the same settings as `runtime.api_server`
(log level INFO with access log, lifespan on, the same logging setup as `runtime.cli`, and
what start-up built frozen out of garbage collection), the same bearer-token guard
(`api.app.TokenGuard` over `api.auth.TokenCheck`), the same safety extensions
(`api.safety.safety_extensions`) and the real `Account` GraphQL type. Its `account` resolver
returns one constant `Account` without any I/O. It does not build the per-request `Context`
that the real API builds.

Load: the same query text and variables for both sides, POSTed by CONCURRENCY tasks sharing
one `httpx.AsyncClient` (keep-alive, one connection per task) for ROUND_SECONDS per side per
round, sides alternating (order swapped every round). Figures are medians over rounds:
queries/s, and p50/p99 latency of each round. The load generator runs in this process, so it
competes with both servers for the machine's CPUs in the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import psutil  # type: ignore[import-untyped]
import strawberry
from _support import REPO_ROOT, emit, median, progress, rounded
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL

from api.accounts.types import Account, AccountStatus
from api.app import TokenGuard
from api.auth import TokenCheck, parse_tokens
from api.context import Services
from api.safety import safety_extensions
from runtime.ports import free_port

SCRIPT = Path(__file__).resolve()
CLIENT_TOKEN = "bench-client-token"
API_TOKENS = f"{CLIENT_TOKEN}:client"
READY_WITHIN = 120.0
STOP_WITHIN = 60.0
CONCURRENCY = 16
ROUNDS = 6
ROUND_SECONDS = 4.0
WARMUP_SECONDS = 3.0
GOAL_RATIO = 0.7
LOG_TAIL_LINES = 40

ACCOUNT_QUERY = (
    "query Account($id: ID!) { account(id: $id) "
    "{ id ownerId balance currency status openedAt lastUpdated version } }"
)
REGISTER_USER = """
mutation Register($input: RegisterUserInput!) {
  registerUser(input: $input) {
    __typename
    ... on UserRegistered { user { id } position }
  }
}
"""
OPEN_ACCOUNT = """
mutation Open($input: OpenAccountInput!) {
  openAccount(input: $input) {
    __typename
    ... on AccountOpened { account { id } position }
  }
}
"""
DEPOSIT_MONEY = """
mutation Deposit($input: DepositMoneyInput!) {
  depositMoney(input: $input) {
    __typename
    ... on MoneyDeposited { account { balance } position }
  }
}
"""


# ---------------------------------------------------------------------------------------
# The whole stack, as `sagaline up` starts it, on free ports.


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
    """A running `python -m runtime.cli up` subprocess with every component embedded."""

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
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.postgres_port}/sagaline"

    def env(self) -> dict[str, str]:
        """Our environment minus any SAGALINE_* setting, plus this stack's dir and ports."""
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
                "SAGALINE_API_TOKENS": API_TOKENS,
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def log_tail(self) -> str:
        """The last lines of `up`'s output and of each component's log."""
        parts = []
        for path in [self.log_path, *sorted((self.data_dir / "logs").glob("*.log"))]:
            with contextlib.suppress(OSError):
                lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
                parts.append(f"==> {path} <==\n" + "\n".join(lines))
        return "\n".join(parts)

    def api_pid(self) -> int | None:
        """The pid of the stack's API process (`runtime.cli api`), if found."""
        assert self.process is not None
        for child in psutil.Process(self.process.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                cmdline = child.cmdline()
                if "runtime.cli" in cmdline and cmdline[-1] == "api":
                    return int(child.pid)
        return None

    async def start(self) -> None:
        """Start `up` and wait, bounded, until GraphQL answers."""
        self.process = spawn(["-m", "runtime.cli", "up"], self.env(), self.log_path)
        await wait_for_graphql(self.graphql_url, self.process, READY_WITHIN, self.log_tail)

    def stop(self) -> int | None:
        """SIGTERM `up` and wait for it; SIGKILL its process group if it hangs."""
        return stop_process(self.process, STOP_WITHIN)


async def wait_for_graphql(
    url: str, process: subprocess.Popen[bytes], within: float, tail: Any
) -> None:
    """Poll `{ __typename }` until it answers 200; fail if the process exits first."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                raise RuntimeError(f"{process.args!r} exited with status {code}:\n{tail()}")
            with contextlib.suppress(httpx.HTTPError):
                response = await client.post(
                    url,
                    json={"query": "{ __typename }"},
                    headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
                )
                if response.status_code == 200:
                    return
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {within:g}s:\n{tail()}")


def spawn(arguments: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """This Python with `arguments`, in its own session, output appended to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, *arguments],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen[bytes] | None, within: float) -> int | None:
    """SIGTERM a process we started and wait; SIGKILL its process group if it hangs."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(within)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


@contextlib.asynccontextmanager
async def running_stack() -> AsyncIterator[Stack]:
    """`sagaline up` in a temp dir under /tmp, stopped and removed afterwards.

    Under /tmp, as in tests/e2e: embedded Postgres runs as an unprivileged account when we
    are root and must be able to reach its data.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="sagaline-bench-up-"))
    api, postgres, temporal, temporal_ui, kafka = distinct_free_ports(5)
    stack = Stack(data_dir, api, postgres, temporal, temporal_ui, kafka, Path(f"{data_dir}.log"))
    progress(f"starting `runtime.cli up` in {data_dir} (API on port {api})")
    started = time.monotonic()
    try:
        await stack.start()
        progress(f"stack up after {time.monotonic() - started:.0f} s")
        yield stack
    finally:
        progress("stopping the stack")
        code = await asyncio.to_thread(stack.stop)
        progress(f"`up` exited with status {code}")
        shutil.rmtree(data_dir, ignore_errors=True)
        stack.log_path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------
# GraphQL calls.


async def graphql_data(
    client: httpx.AsyncClient, url: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    """POST an operation as the bench's client; its `data`, which must come without errors."""
    response = await client.post(
        url,
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
    )
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:500]}")
    body: dict[str, Any] = response.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    data: dict[str, Any] = body["data"]
    return data


def expect(payload: dict[str, Any], typename: str) -> dict[str, Any]:
    """The payload, which must be of the success type `typename`."""
    if payload.get("__typename") != typename:
        raise RuntimeError(f"expected {typename}, got {payload}")
    return payload


async def register_user(client: httpx.AsyncClient, url: str) -> str:
    """A new user's id."""
    tag = uuid.uuid4().hex[:10]
    variables = {
        "input": {"email": f"bench-{tag}@example.com", "name": "Bench", "password": "benchpass1"}
    }
    data = await graphql_data(client, url, REGISTER_USER, variables)
    payload = expect(data["registerUser"], "UserRegistered")
    return str(payload["user"]["id"])


async def open_account(client: httpx.AsyncClient, url: str, owner_id: str, deposit: str) -> str:
    """A new account of `owner_id` holding `deposit`."""
    data = await graphql_data(client, url, OPEN_ACCOUNT, {"input": {"ownerId": owner_id}})
    account_id = str(expect(data["openAccount"], "AccountOpened")["account"]["id"])
    data = await graphql_data(
        client, url, DEPOSIT_MONEY, {"input": {"accountId": account_id, "amount": deposit}}
    )
    expect(data["depositMoney"], "MoneyDeposited")
    return account_id


# ---------------------------------------------------------------------------------------
# Statistics.


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty sample."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


# ---------------------------------------------------------------------------------------
# Baseline server: the same serving stack with a constant resolver.

_NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CONSTANT_ACCOUNT = Account(
    id=strawberry.ID("00000000-0000-0000-0000-00000000acc0"),
    owner_id=strawberry.ID("00000000-0000-0000-0000-00000000a5e0"),
    balance=Decimal("1000.00"),
    currency="EUR",
    status=AccountStatus.OPEN,
    opened_at=_NOW,
    last_updated=_NOW,
    version=2,
)


@strawberry.type
class ConstantQuery:
    @strawberry.field(description="Always the same account.")  # type: ignore[untyped-decorator]
    async def account(
        self, id: strawberry.ID, consistent_with: str | None = None
    ) -> Account | None:
        return CONSTANT_ACCOUNT


def baseline_app(tokens: str) -> Starlette:
    """Starlette + Strawberry with the API's token guard and safety extensions."""
    schema = strawberry.Schema(query=ConstantQuery, extensions=safety_extensions())
    # TokenGuard only reads `services.tokens`.
    state = cast(
        dict[str, Services], {"services": SimpleNamespace(tokens=TokenCheck(parse_tokens(tokens)))}
    )
    graphql = TokenGuard(GraphQL[None, None](schema, allow_queries_via_get=False), state)
    return Starlette(routes=[Route("/graphql", graphql, methods=["GET", "POST"])])


def serve_baseline(port: int) -> None:
    """Serve the baseline app as runtime.api_server serves the API (run in a child process)."""
    import uvicorn

    from runtime.startup import freeze_startup_objects

    logging.basicConfig(
        level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    config = uvicorn.Config(
        baseline_app(os.environ.get("SAGALINE_API_TOKENS", "")),
        host="127.0.0.1",
        port=port,
        log_level="info",
        lifespan="on",
    )
    freeze_startup_objects()
    uvicorn.Server(config).run()


@contextlib.asynccontextmanager
async def running_baseline(directory: Path) -> AsyncIterator[tuple[str, int]]:
    """The baseline server in a child process: its GraphQL URL and pid."""
    port = free_port()
    log_path = directory / "baseline-api.log"
    env = {**os.environ, "SAGALINE_API_TOKENS": API_TOKENS, "PYTHONUNBUFFERED": "1"}
    process = spawn([str(SCRIPT), "--serve-baseline", str(port)], env, log_path)
    url = f"http://127.0.0.1:{port}/graphql"

    def tail() -> str:
        return log_path.read_text(errors="replace")[-4000:]

    try:
        await wait_for_graphql(url, process, 60.0, tail)
        yield url, process.pid
    finally:
        await asyncio.to_thread(stop_process, process, 20.0)


# ---------------------------------------------------------------------------------------
# Load.


@dataclass
class Round:
    side: str
    queries: int
    seconds: float
    latencies: list[float]
    server_cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.queries / self.seconds


async def load_round(
    client: httpx.AsyncClient,
    side: str,
    url: str,
    body: bytes,
    server: psutil.Process,
    seconds: float,
) -> Round:
    """CONCURRENCY tasks POST the same query back to back until the deadline."""
    headers = {"Authorization": f"Bearer {CLIENT_TOKEN}", "Content-Type": "application/json"}
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    failures: list[str] = []
    cpu = server.cpu_times()
    began = loop.time()
    deadline = began + seconds

    async def task() -> None:
        while loop.time() < deadline:
            sent = time.perf_counter()
            response = await client.post(url, content=body, headers=headers)
            latencies.append(time.perf_counter() - sent)
            content = response.content
            if response.status_code != 200 or b'"errors"' in content or b'"id"' not in content:
                failures.append(f"HTTP {response.status_code}: {content[:300]!r}")

    await asyncio.gather(*(task() for _ in range(CONCURRENCY)))
    elapsed = loop.time() - began
    after = server.cpu_times()
    if failures:
        raise RuntimeError(f"{side}: {len(failures)} failed queries, first: {failures[0]}")
    return Round(
        side=side,
        queries=len(latencies),
        seconds=elapsed,
        latencies=latencies,
        server_cpu_seconds=(after.user + after.system) - (cpu.user + cpu.system),
    )


def side_figures(rounds: list[Round]) -> dict[str, Any]:
    return {
        "rate": median([r.rate for r in rounds]),
        "p50_ms": median([1000 * percentile(r.latencies, 0.5) for r in rounds]),
        "p99_ms": median([1000 * percentile(r.latencies, 0.99) for r in rounds]),
        "server_cpu_ms_per_query": median(
            [1000 * r.server_cpu_seconds / r.queries for r in rounds]
        ),
        "samples": [round(r.rate, 1) for r in rounds],
    }


async def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="sagaline-bench-gql-"))
    try:
        async with running_stack() as stack, running_baseline(work) as (baseline_url, pid):
            await measure(stack, baseline_url, psutil.Process(pid))
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def measure(stack: Stack, baseline_url: str, baseline_server: psutil.Process) -> None:
    url = stack.graphql_url
    api_pid = stack.api_pid()
    if api_pid is None:
        raise RuntimeError("cannot find the stack's API process")
    api_server = psutil.Process(api_pid)
    async with httpx.AsyncClient(timeout=30.0) as setup:
        owner = await register_user(setup, url)
        account_id = await open_account(setup, url, owner, "1234.56")
        data = await graphql_data(setup, url, ACCOUNT_QUERY, {"id": account_id})
        if data["account"] is None or Decimal(data["account"]["balance"]) != Decimal("1234.56"):
            raise RuntimeError(f"the read model does not have the account: {data}")
    progress(f"user {owner} and account {account_id} created; account query answers")

    body = httpx.Request(
        "POST", url, json={"query": ACCOUNT_QUERY, "variables": {"id": account_id}}
    ).read()
    sides = {"project": (url, api_server), "baseline": (baseline_url, baseline_server)}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    rounds: dict[str, list[Round]] = {"project": [], "baseline": []}
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
        for side, (side_url, server) in sides.items():
            warm = await load_round(client, side, side_url, body, server, WARMUP_SECONDS)
            progress(f"warm-up {side}: {warm.rate:.0f} queries/s")
        for index in range(ROUNDS):
            order = ["project", "baseline"] if index % 2 == 0 else ["baseline", "project"]
            for side in order:
                side_url, server = sides[side]
                result = await load_round(client, side, side_url, body, server, ROUND_SECONDS)
                rounds[side].append(result)
            progress(
                f"round {index + 1}/{ROUNDS}: "
                + ", ".join(
                    f"{s} {rounds[s][-1].rate:.0f}/s "
                    f"(p50 {1000 * percentile(rounds[s][-1].latencies, 0.5):.1f} ms)"
                    for s in order
                )
            )

    project = side_figures(rounds["project"])
    baseline = side_figures(rounds["baseline"])
    ratio = project["rate"] / baseline["rate"]
    paired = median(
        [p.rate / b.rate for p, b in zip(rounds["project"], rounds["baseline"], strict=True)]
    )
    emit(
        {
            "bench": "graphql_query",
            "value": rounded(project["rate"]),
            "unit": "queries/s",
            "baseline": rounded(baseline["rate"]),
            "ratio": rounded(ratio),
            "goal": GOAL_RATIO,
            "goal_met": ratio >= GOAL_RATIO,
            "paired_ratio_median": rounded(paired),
            "p50_ms": rounded(project["p50_ms"]),
            "p99_ms": rounded(project["p99_ms"]),
            "baseline_p50_ms": rounded(baseline["p50_ms"]),
            "baseline_p99_ms": rounded(baseline["p99_ms"]),
            "server_cpu_ms_per_query": rounded(project["server_cpu_ms_per_query"]),
            "baseline_server_cpu_ms_per_query": rounded(baseline["server_cpu_ms_per_query"]),
            "concurrency": CONCURRENCY,
            "rounds": ROUNDS,
            "round_seconds": ROUND_SECONDS,
            "samples": {"project": project["samples"], "baseline": baseline["samples"]},
            "baseline_kind": "Starlette + Strawberry under uvicorn, same token guard, safety"
            " extensions and Account type; constant resolver, no per-request Context",
        }
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="GraphQL account(id) queries per second")
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_baseline:
        serve_baseline(arguments.serve_baseline)
    else:
        asyncio.run(main())
