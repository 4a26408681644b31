"""GraphQL `account(id)` queries per second over HTTP, against a constant resolver.

The project: the whole stack as `python -m runtime.cli up` starts it (embedded Postgres,
Temporal, Kafka broker, worker and API, every one on a free port, data under a temp dir in
/tmp), with one user and one account created through GraphQL. The API process is the real
one: uvicorn serving `api.app.create_app`, whose `account` resolver reads the accounts read
model in Postgres.

Baseline: `bench/_baseline_api.py` in a child process, the same serving stack (uvicorn,
Starlette, Strawberry, the API's token guard, safety extensions and `Account` type) with a
resolver that returns one constant `Account` without any I/O. It does not build the
per-request `Context` that the real API builds.

Load: the same query text and variables for both sides, POSTed by CONCURRENCY tasks sharing
one `httpx.AsyncClient` (keep-alive, one connection per task) for ROUND_SECONDS per side per
round, sides alternating (order swapped every round). Figures are medians over rounds:
queries/s, and p50/p99 latency of each round. The load generator runs in this process, so it
competes with both servers for the machine's CPUs in the same way.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import psutil  # type: ignore[import-untyped]
from _baseline_api import running_baseline
from _stack import (
    API_TOKENS,
    CLIENT_TOKEN,
    api_pid,
    graphql_data,
    open_account,
    register_user,
    running_stack,
)
from _support import emit, median, percentile, progress, rounded

from runtime.launcher import UpProcess

CONCURRENCY = 16
ROUNDS = 6
ROUND_SECONDS = 4.0
WARMUP_SECONDS = 3.0
GOAL_RATIO = 0.7

ACCOUNT_QUERY = (
    "query Account($id: ID!) { account(id: $id) "
    "{ id ownerId balance currency status openedAt lastUpdated version } }"
)


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
        async with (
            running_stack() as stack,
            running_baseline(work, API_TOKENS) as (baseline_url, pid),
        ):
            await measure(stack, baseline_url, psutil.Process(pid))
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def measure(stack: UpProcess, baseline_url: str, baseline_server: psutil.Process) -> None:
    url = stack.graphql_url
    api_server = psutil.Process(api_pid(stack))
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
    asyncio.run(main())
