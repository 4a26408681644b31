"""What metrics and tracing cost: graphql_query's load and saga_throughput's load against a
stack with both on, and against the same stack with both off, in the same run.

Two stacks, each the whole of `python -m runtime.cli up` (embedded Postgres, Temporal, Kafka
broker, worker, followers and API, on free ports, data under a temp dir in /tmp), both running
for the whole run:
- on: what `up` runs by default (metrics on: the API's /metrics, the worker's, the
  followers' and the Temporal SDK's metrics ports), plus SAGALINE_TRACING=true, so every
  process writes its spans to `<data dir>/traces/<role>.jsonl` (no OTLP endpoint);
- off: SAGALINE_METRICS=false and SAGALINE_TRACING=false: no instrument, no /metrics, no span.
Before the load the script checks that each side is what it says: /metrics answers on one
and not on the other; after it, that the on side's trace files hold the spans of the load.

Loads, one side after the other and the order swapped every round (`ROUNDS` rounds each):
- graphql_query's: `wrk` (bench/_wrk.py), one thread, CONCURRENCY keep-alive connections
  POSTing the same `account(id)` query as bench/graphql_query.py, ROUND_SECONDS a round;
  the figure is queries/s;
- saga_throughput's: TRANSFERS TransferSagas started at once through a Temporal client of the
  side's Temporal, on `up`'s task queue (so the side's own worker runs them, and its
  followers process the relay, projectors and pattern detector that follow them), among
  ACCOUNTS accounts opened through the repository; the figure is transfers/s, the round's
  transfers over the time from the first start to the last result. The client here stands
  for the API that starts the saga: on the on side it traces as the API does (Temporal's
  tracing interceptor, each start inside a server span, its spans to
  `<data dir>/traces/bench-client.jsonl`), so the worker's spans join a trace as they do
  under `up` (Temporal's interceptor makes no workflow span without a parent); on the off
  side it does not.

Figures are medians over rounds, with each round's ratio (on over off) and the median of those
paired ratios; each side's CPU per query or transfer by process role (api, worker,
followers, postgres, temporal, ...) from psutil. The goal: on at most 10% slower than off, a
ratio of at least GOAL_RATIO. The last line of stdout has both loads, for `make bench`'s table.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _stack import (
    CLIENT_TOKEN,
    cpu_by_role,
    graphql_data,
    open_account,
    register_user,
    running_stack,
    stack_cpu,
)
from _support import emit, median, progress, rounded
from _wrk import wrk_round
from graphql_query import ACCOUNT_QUERY, CONCURRENCY, ROUND_SECONDS, WARMUP_SECONDS
from opentelemetry.trace import SpanKind
from saga_throughput import AMOUNT, DAY, check_balances, open_accounts
from temporalio.client import Client

from adapters.database import create_engine
from adapters.event_store import PostgresEventStore
from adapters.temporal import connect
from adapters.tracing import tracer
from domain.repository import Repository
from domain.transfers import TransferMoney
from runtime.config import Settings
from runtime.launcher import UpProcess
from runtime.tracing import traced
from workflows import search_attributes
from workflows.transfers import SAGA_TYPE, TransferOutcome, TransferSaga, transfer_workflow_id

GOAL_RATIO = 0.9
ROUNDS = 8
TRANSFERS = 40
WARMUP_TRANSFERS = 10
ACCOUNTS = 30

SIDES = ("on", "off")
SIDE_SETTINGS = {
    "on": {"SAGALINE_METRICS": "true", "SAGALINE_TRACING": "true"},
    "off": {"SAGALINE_METRICS": "false", "SAGALINE_TRACING": "false"},
}
TASK_QUEUE = Settings().temporal_task_queue
"""`up`'s task queue (the default), where each side's own worker polls."""


@dataclass
class Side:
    name: str
    stack: UpProcess
    body: bytes = b""
    client: Client | None = None
    accounts: list[str] = field(default_factory=list)
    random: random.Random = field(default_factory=lambda: random.Random(20261202))


@dataclass
class Round:
    side: str
    work: int
    seconds: float
    cpu: dict[str, float]
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def rate(self) -> float:
        return self.work / self.seconds


async def query_round(side: Side, seconds: float) -> Round:
    before = stack_cpu(side.stack)
    load = await wrk_round(
        side.stack.graphql_url, [side.body], f"Bearer {CLIENT_TOKEN}", CONCURRENCY, seconds
    )
    cpu = cpu_by_role(before, stack_cpu(side.stack))
    cpu.pop("bench", None)
    cpu["wrk"] = load.cpu_seconds
    return Round(side.name, load.requests, load.seconds, cpu, load.p50_ms, load.p99_ms)


def command(side: Side) -> TransferMoney:
    source, destination = side.random.sample(side.accounts, 2)
    return TransferMoney(f"transfer-{uuid.uuid4()}", source, destination, AMOUNT, DAY)


async def one_transfer(side: Side, transfer: TransferMoney) -> tuple[float, str]:
    loop = asyncio.get_running_loop()
    began = loop.time()
    if side.name == "on":
        with tracer().start_as_current_span("transfer", kind=SpanKind.SERVER):
            status = await start_transfer(side, transfer)
    else:
        status = await start_transfer(side, transfer)
    return loop.time() - began, status


async def start_transfer(side: Side, transfer: TransferMoney) -> str:
    assert side.client is not None
    outcome: TransferOutcome = await side.client.execute_workflow(
        TransferSaga.run,
        transfer,
        id=transfer_workflow_id(transfer.transfer_id),
        task_queue=TASK_QUEUE,
        search_attributes=search_attributes.at_start(
            transfer.transfer_id,
            [transfer.transfer_id, transfer.from_account_id, transfer.to_account_id],
            SAGA_TYPE,
        ),
    )
    return str(outcome.status)


async def saga_round(side: Side, count: int) -> Round:
    """`count` transfers started at once; every one must complete."""
    commands = [command(side) for _ in range(count)]
    loop = asyncio.get_running_loop()
    before = stack_cpu(side.stack)
    began = loop.time()
    results = await asyncio.gather(*(one_transfer(side, c) for c in commands))
    seconds = loop.time() - began
    cpu = cpu_by_role(before, stack_cpu(side.stack))
    statuses = {status for _, status in results}
    if statuses != {"COMPLETED"}:
        raise RuntimeError(f"{side.name}: transfers ended {statuses}")
    latencies = sorted(latency for latency, _ in results)
    return Round(
        side.name,
        count,
        seconds,
        cpu,
        1000 * latencies[len(latencies) // 2],
        1000 * latencies[min(len(latencies) - 1, round(0.99 * len(latencies)))],
    )


async def check_switch(side: Side) -> None:
    """The on side serves /metrics, the off side does not."""
    async with httpx.AsyncClient(timeout=30.0) as http:
        status = (await http.get(side.stack.api_url + "/metrics")).status_code
    expected = 200 if side.name == "on" else 404
    if status != expected:
        raise RuntimeError(f"{side.name}: GET /metrics answered {status}, not {expected}")


async def prepare(side: Side) -> None:
    """The account the queries read, the accounts the transfers move money among."""
    await check_switch(side)
    url = side.stack.graphql_url
    async with httpx.AsyncClient(timeout=60.0) as setup:
        owner = await register_user(setup, url)
        account_id = await open_account(setup, url, owner, "1234.56")
        variables = {"id": account_id}
        data = await graphql_data(setup, url, ACCOUNT_QUERY, variables)
        if data["account"] is None or Decimal(data["account"]["balance"]) != Decimal("1234.56"):
            raise RuntimeError(f"{side.name}: the read model does not have the account: {data}")
    side.body = httpx.Request(
        "POST", url, json={"query": ACCOUNT_QUERY, "variables": variables}
    ).read()
    engine = create_engine(side.stack.database_url, pool_size=2)
    store = PostgresEventStore(engine)
    try:
        side.accounts = await open_accounts(Repository(store), ACCOUNTS)
    finally:
        await store.close()
        await engine.dispose()
    # This process traces (main): the on side's client gets Temporal's tracing interceptor
    # from `connect`, as the API's does; the off side's client is the same without it.
    client = await connect(side.stack.temporal_address, Settings().temporal_namespace)
    if side.name == "off":
        config = client.config()
        config["interceptors"] = []
        client = Client(**config)
    side.client = client
    progress(f"{side.name}: account {account_id} and {ACCOUNTS} transfer accounts ready")


async def check_balances_of(side: Side) -> None:
    engine = create_engine(side.stack.database_url, pool_size=2)
    store = PostgresEventStore(engine)
    try:
        await check_balances(Repository(store), side.accounts)
    finally:
        await store.close()
        await engine.dispose()


def trace_files(side: Side) -> dict[str, Any]:
    """The on side's exported spans: lines and bytes per file, and which of the names
    checked its API, worker and followers wrote (the relay's `send sagaline.events`)."""
    files: dict[str, Any] = {}
    names: set[str] = set()
    for path in sorted((side.stack.data_dir / "traces").glob("*.jsonl")):
        text = path.read_text()
        lines = text.splitlines()
        files[path.name] = {"spans": len(lines), "bytes": len(text.encode())}
        if path.name == "bench-client.jsonl":
            continue
        for line in lines:
            if '"name": "append"' in line:
                names.add("append")
            if '"name": "POST /graphql"' in line:
                names.add("POST /graphql")
            if '"name": "RunWorkflow:TransferSaga"' in line:
                names.add("RunWorkflow:TransferSaga")
            if '"name": "send sagaline.events"' in line:
                names.add("send sagaline.events")
    return {"files": files, "span_names_checked": sorted(names)}


def figures(rounds: dict[str, list[Round]], unit_of_work: str) -> dict[str, Any]:
    """Medians per side, the ratio of medians and the median of the per-round ratios."""
    on, off = rounds["on"], rounds["off"]
    rate_on = median([r.rate for r in on])
    rate_off = median([r.rate for r in off])
    ratio = rate_on / rate_off
    paired = median([a.rate / b.rate for a, b in zip(on, off, strict=True)])

    def cpu_ms(side_rounds: Sequence[Round]) -> dict[str, float]:
        roles = sorted({role for r in side_rounds for role in r.cpu})
        return {
            role: rounded(median([1000 * r.cpu.get(role, 0.0) / r.work for r in side_rounds]))
            for role in roles
        }

    return {
        "value": rounded(rate_on),
        "baseline": rounded(rate_off),
        "ratio": rounded(ratio),
        "paired_ratio_median": rounded(paired),
        "goal": GOAL_RATIO,
        "goal_met": ratio >= GOAL_RATIO,
        "p50_ms": {s: rounded(median([r.p50_ms or 0.0 for r in rounds[s]])) for s in SIDES},
        "p99_ms": {s: rounded(median([r.p99_ms or 0.0 for r in rounds[s]])) for s in SIDES},
        f"cpu_ms_per_{unit_of_work}": {s: cpu_ms(rounds[s]) for s in SIDES},
        "samples": {s: [round(r.rate, 2) for r in rounds[s]] for s in SIDES},
        "paired_ratios": [round(a.rate / b.rate, 3) for a, b in zip(on, off, strict=True)],
    }


async def alternate(
    sides: dict[str, Side], run: Callable[[Side], Awaitable[Round]], what: str, unit: str
) -> dict[str, list[Round]]:
    """ROUNDS rounds of `run(side)` per side, on first in even rounds and off first in odd."""
    rounds: dict[str, list[Round]] = {s: [] for s in SIDES}
    for index in range(ROUNDS):
        order = list(SIDES) if index % 2 == 0 else list(reversed(SIDES))
        for name in order:
            rounds[name].append(await run(sides[name]))
        progress(
            f"{what} round {index + 1}/{ROUNDS}: "
            + ", ".join(f"{s} {rounds[s][-1].rate:.2f} {unit}" for s in order)
            + f" (load {os.getloadavg()[0]:.1f})"
        )
    return rounds


@contextlib.asynccontextmanager
async def both_stacks() -> AsyncIterator[dict[str, Side]]:
    # One after the other: two stacks starting at once on a busy machine may miss `up`'s bound.
    async with running_stack(SIDE_SETTINGS["on"]) as on, running_stack(SIDE_SETTINGS["off"]) as off:
        yield {"on": Side("on", on), "off": Side("off", off)}


async def main() -> None:
    async with both_stacks() as sides:
        client_settings = Settings(tracing=True, data_dir=sides["on"].stack.data_dir)
        with traced(client_settings, "bench-client"):
            await measure(sides)


async def measure(sides: dict[str, Side]) -> None:
    for side in sides.values():
        await prepare(side)
    load_at_start = os.getloadavg()
    for side in sides.values():
        warm = await query_round(side, WARMUP_SECONDS)
        progress(f"warm-up queries {side.name}: {warm.rate:.0f}/s")
    queries = await alternate(
        sides, lambda s: query_round(s, ROUND_SECONDS), "graphql_query", "queries/s"
    )
    for side in sides.values():
        warm = await saga_round(side, WARMUP_TRANSFERS)
        progress(f"warm-up transfers {side.name}: {warm.rate:.2f}/s")
    sagas = await alternate(
        sides, lambda s: saga_round(s, TRANSFERS), "saga_throughput", "transfers/s"
    )
    load_at_end = os.getloadavg()
    for side in sides.values():
        await check_balances_of(side)
    traces = trace_files(sides["on"])
    if not traces["files"] or len(traces["span_names_checked"]) < 4:
        raise RuntimeError(f"the on side did not export the load's spans: {traces}")
    progress(f"every transfer completed, balances add up; on side's traces: {traces}")

    load = {
        "load_average_at_start": [round(x, 2) for x in load_at_start],
        "load_average_at_end": [round(x, 2) for x in load_at_end],
    }
    query_result = {
        "bench": "observability_cost/graphql_query",
        "unit": "queries/s",
        **figures(queries, "query"),
        "rounds": ROUNDS,
        "round_seconds": ROUND_SECONDS,
        "concurrency": CONCURRENCY,
        **load,
    }
    saga_result = {
        "bench": "observability_cost/saga_throughput",
        "unit": "transfers/s",
        **figures(sagas, "transfer"),
        "rounds": ROUNDS,
        "transfers_per_round": TRANSFERS,
        "accounts": ACCOUNTS,
        **load,
    }
    emit(query_result)
    emit(saga_result)
    table_keys = ("value", "baseline", "ratio", "goal", "goal_met", "unit")
    emit(
        {
            **{key: query_result[key] for key in table_keys},
            "bench": "observability_cost: graphql_query, on vs off",
            "figures": [
                {"name": "saga_throughput, on vs off", **{k: saga_result[k] for k in table_keys}}
            ],
            "graphql_query": query_result,
            "saga_throughput": saga_result,
            "on": "up's defaults (metrics on) + SAGALINE_TRACING=true, spans to files",
            "off": "SAGALINE_METRICS=false, SAGALINE_TRACING=false",
            "traces": traces,
            **load,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
