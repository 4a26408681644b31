"""GraphQL `account(id)` queries per second over HTTP, against a hand-written endpoint.

The project: the whole stack as `python -m runtime.cli up` starts it (embedded Postgres,
Temporal, Kafka broker, worker and API, every one on a free port, data under a temp dir in
/tmp), with one user and ACCOUNTS accounts created through GraphQL. The API process is the
real one: uvicorn serving `api.app.create_app`, whose `account` resolver reads the accounts
read model in Postgres.

Baseline: `bench/_baseline_api.py` in a child process, what a user would write by hand: one
Starlette endpoint under uvicorn with the same server settings and token guard, running the
same SELECT on the same database through psycopg 3 (prepared) and answering the same JSON.
Before the load, both sides' answers are checked to be equal for every account, and the
project's to be right for every account asked for all at once.

Load: `wrk` (bench/_wrk.py), one thread, CONCURRENCY keep-alive connections, the same POST
bodies for both sides (each account's query in turn, so the requests in flight together ask
for different accounts), ROUND_SECONDS per side per round, the order swapped every round.
Figures are medians over rounds: queries/s and each round's p50/p99 latency, and where the
CPU went per query: the server process, Postgres (every backend of the stack) and wrk.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
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
from _support import emit, median, progress, rounded
from _wrk import WrkRound, wrk_round

from runtime.launcher import UpProcess

CONCURRENCY = 16
ACCOUNTS = 32
ROUNDS = 6
ROUND_SECONDS = 4.0
WARMUP_SECONDS = 3.0
GOAL_RATIO = 0.5
GOAL_P99_TIMES = 2.0

ACCOUNT_QUERY = (
    "query Account($id: ID!) { account(id: $id) "
    "{ id ownerId balance currency status openedAt lastUpdated version } }"
)


def cpu_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    """User plus system CPU of each process still running, by pid."""
    times: dict[int, float] = {}
    for process in processes:
        try:
            cpu = process.cpu_times()
        except psutil.Error:
            continue
        times[process.pid] = cpu.user + cpu.system
    return times


def postgres_processes(stack: UpProcess) -> list[psutil.Process]:
    """The stack's Postgres server and its backends."""
    found = []
    for child in psutil.Process(stack.pid).children(recursive=True):
        try:
            if child.name().startswith("postgres"):
                found.append(child)
        except psutil.Error:
            continue
    return found


@dataclass
class Round:
    side: str
    load: WrkRound
    server_cpu_seconds: float
    postgres_cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.load.rate


async def load_round(
    side: str,
    url: str,
    bodies: list[bytes],
    server: psutil.Process,
    stack: UpProcess,
    seconds: float,
) -> Round:
    """wrk POSTs the query on CONCURRENCY connections until the time is up."""
    postgres = postgres_processes(stack)
    server_before = cpu_seconds([server])[server.pid]
    postgres_before = cpu_seconds(postgres)
    load = await wrk_round(url, bodies, f"Bearer {CLIENT_TOKEN}", CONCURRENCY, seconds)
    server_after = cpu_seconds([server])[server.pid]
    postgres_after = cpu_seconds(postgres)
    postgres_used = sum(t - postgres_before.get(pid, 0.0) for pid, t in postgres_after.items())
    return Round(side, load, server_after - server_before, postgres_used)


def side_figures(rounds: list[Round]) -> dict[str, Any]:
    def per_query_ms(seconds: float, r: Round) -> float:
        return 1000 * seconds / r.load.requests

    return {
        "rate": median([r.rate for r in rounds]),
        "p50_ms": median([r.load.p50_ms for r in rounds]),
        "p99_ms": median([r.load.p99_ms for r in rounds]),
        "server_cpu_ms_per_query": median([per_query_ms(r.server_cpu_seconds, r) for r in rounds]),
        "postgres_cpu_ms_per_query": median(
            [per_query_ms(r.postgres_cpu_seconds, r) for r in rounds]
        ),
        "wrk_cpu_ms_per_query": median([per_query_ms(r.load.cpu_seconds, r) for r in rounds]),
        "samples": [round(r.rate, 1) for r in rounds],
        "p99_samples": [round(r.load.p99_ms, 2) for r in rounds],
    }


async def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="sagaline-bench-gql-"))
    try:
        async with (
            running_stack() as stack,
            running_baseline(work, API_TOKENS, stack.database_url) as (baseline, pid),
        ):
            await measure(stack, baseline, psutil.Process(pid))
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def measure(stack: UpProcess, baseline_url: str, baseline_server: psutil.Process) -> None:
    url = stack.graphql_url
    api_server = psutil.Process(api_pid(stack))
    async with httpx.AsyncClient(timeout=30.0) as setup:
        owner = await register_user(setup, url)
        deposits = {
            await open_account(setup, url, owner, f"{1000 + index}.56"): Decimal(
                f"{1000 + index}.56"
            )
            for index in range(ACCOUNTS)
        }
        for account_id, deposit in deposits.items():
            variables = {"id": account_id}
            data = await graphql_data(setup, url, ACCOUNT_QUERY, variables)
            if data["account"] is None or Decimal(data["account"]["balance"]) != deposit:
                raise RuntimeError(f"the read model does not have the account: {data}")
            by_hand = await graphql_data(setup, baseline_url, ACCOUNT_QUERY, variables)
            if by_hand != data:
                raise RuntimeError(f"the baseline answers {by_hand}, the API {data}")
        together = await asyncio.gather(
            *(graphql_data(setup, url, ACCOUNT_QUERY, {"id": a}) for a in deposits)
        )
        for account_id, data in zip(deposits, together, strict=True):
            if data["account"]["id"] != account_id:
                raise RuntimeError(f"asked together for {account_id}, the API answers {data}")
    progress(f"user {owner} and {ACCOUNTS} accounts created; both sides answer the same")

    bodies = [
        httpx.Request("POST", url, json={"query": ACCOUNT_QUERY, "variables": {"id": a}}).read()
        for a in deposits
    ]
    sides = {"project": (url, api_server), "baseline": (baseline_url, baseline_server)}
    rounds: dict[str, list[Round]] = {"project": [], "baseline": []}
    load_average = os.getloadavg()[0]
    for side, (side_url, server) in sides.items():
        warm = await load_round(side, side_url, bodies, server, stack, WARMUP_SECONDS)
        progress(f"warm-up {side}: {warm.rate:.0f} queries/s")
    for index in range(ROUNDS):
        order = ["project", "baseline"] if index % 2 == 0 else ["baseline", "project"]
        for side in order:
            side_url, server = sides[side]
            rounds[side].append(
                await load_round(side, side_url, bodies, server, stack, ROUND_SECONDS)
            )
        progress(
            f"round {index + 1}/{ROUNDS}: "
            + ", ".join(
                f"{s} {rounds[s][-1].rate:.0f}/s (p50 {rounds[s][-1].load.p50_ms:.1f} ms,"
                f" p99 {rounds[s][-1].load.p99_ms:.1f} ms)"
                for s in order
            )
        )

    project = side_figures(rounds["project"])
    baseline = side_figures(rounds["baseline"])
    ratio = project["rate"] / baseline["rate"]
    p99_times = project["p99_ms"] / baseline["p99_ms"]
    pairs = list(zip(rounds["project"], rounds["baseline"], strict=True))
    emit(
        {
            "bench": "graphql_query",
            "value": rounded(project["rate"]),
            "unit": "queries/s",
            "baseline": rounded(baseline["rate"]),
            "ratio": rounded(ratio),
            "goal": GOAL_RATIO,
            "goal_met": ratio >= GOAL_RATIO,
            "paired_ratio_median": rounded(median([p.rate / b.rate for p, b in pairs])),
            "p50_ms": rounded(project["p50_ms"]),
            "p99_ms": rounded(project["p99_ms"]),
            "baseline_p50_ms": rounded(baseline["p50_ms"]),
            "baseline_p99_ms": rounded(baseline["p99_ms"]),
            "p99_times_baseline": rounded(p99_times),
            "p99_goal_times": GOAL_P99_TIMES,
            "p99_goal_met": p99_times <= GOAL_P99_TIMES,
            "paired_p99_times_median": rounded(
                median([p.load.p99_ms / b.load.p99_ms for p, b in pairs])
            ),
            "cpu_ms_per_query": {
                side: {
                    "server": rounded(figures["server_cpu_ms_per_query"]),
                    "postgres": rounded(figures["postgres_cpu_ms_per_query"]),
                    "wrk": rounded(figures["wrk_cpu_ms_per_query"]),
                }
                for side, figures in (("project", project), ("baseline", baseline))
            },
            "load_average_1m_at_start": round(load_average, 2),
            "concurrency": CONCURRENCY,
            "accounts": ACCOUNTS,
            "rounds": ROUNDS,
            "round_seconds": ROUND_SECONDS,
            "samples": {"project": project["samples"], "baseline": baseline["samples"]},
            "p99_samples": {"project": project["p99_samples"], "baseline": baseline["p99_samples"]},
            "load_generator": f"wrk -t1 -c{CONCURRENCY}, Lua script for the POST bodies",
            "baseline_kind": "hand-written Starlette endpoint under uvicorn, same token guard,"
            " the same SELECT through a psycopg 3 pool (prepared), the same JSON",
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
