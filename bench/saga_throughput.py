"""TransferSaga throughput end to end, against a bare workflow of 5 no-op activities.

One process runs everything except the servers: a Temporal dev server (in memory, free
ports, started here), the machine's Postgres (or an embedded one, see `_support`), and two
in-process workers on the same client:
- the project: `runtime.worker.create_worker(settings, client, engine)` on its own task queue,
  i.e. the real TransferActivities over the real repository, event store and snapshot store;
- baseline: a bare workflow running 5 no-op activities one after the other, with the same
  timeout and retry policy and the same `TransferMoney` argument, on a second task queue.

Each round starts N workflows at once and waits for all of them; rounds alternate sides
(order swapped every round). Figures are medians over rounds: workflows/s (N over the time
from the first start to the last result), p50/p99 latency (start call to result), the
process's RSS while the round is in flight, its CPU time per workflow, and the per-activity
execution and queue times (a worker interceptor) and database statements (engine events).
Afterwards a few workflows of each side run one at a time, for the unloaded latency.

Transfers move 1.00 among ACCOUNTS accounts with ample balance and daily limit, so every
transfer completes; the script checks that, and that the balances still add up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio import activity, workflow

# The bare workflow below lives in this module, which the workflow sandbox re-executes for
# every run: everything but the standard library and temporalio is passed through.
with workflow.unsafe.imports_passed_through():
    # A plain string operation: the sandbox refuses Path.resolve (file system access).
    _BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
    if _BENCH_DIR not in sys.path:
        sys.path.insert(0, _BENCH_DIR)
    import psutil  # type: ignore[import-untyped]
    from _support import bench_database, emit, median, progress, rounded, server_facts
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import AsyncEngine
    from temporalio import client as temporal_client
    from temporalio import worker as temporal_worker
    from temporalio.client import Client
    from temporalio.runtime import (
        LogForwardingConfig,
        LoggingConfig,
        Runtime,
        TelemetryConfig,
        TelemetryFilter,
    )

    from adapters.database import create_engine
    from adapters.event_store import PostgresEventStore
    from adapters.temporal import connect
    from domain.accounts import Account
    from domain.repository import Repository
    from domain.transfers import TransferMoney
    from domain.users import User, email_key
    from runtime.config import Settings
    from runtime.embedded.temporal import EmbeddedTemporal
    from runtime.ports import free_port
    from runtime.startup import freeze_startup_objects
    from runtime.worker import create_worker
    from workflows import search_attributes
    from workflows.commands import COMMAND_RETRY, COMMAND_TIMEOUT
    from workflows.transfers import SAGA_TYPE, TransferOutcome, TransferSaga, transfer_workflow_id

CONCURRENT = 100
ROUNDS = 6
WARMUP = 20
SERIAL = 10
ACCOUNTS = 50
ACTIVITIES = 5
BALANCE = Decimal("1000000.00")
DAILY_LIMIT = Decimal("1000000.00")
AMOUNT = Decimal("1.00")
DAY = "2026-11-28"
GOAL_RATIO = 0.7
SAMPLE_SECONDS = 0.02


# ---------------------------------------------------------------------------------------
# Baseline: the same shape of work for Temporal, with nothing behind the activities.


@activity.defn(name="bench_noop")
async def noop(command: TransferMoney) -> int:
    """Does nothing; returns an int like the transfer steps."""
    return 0


@workflow.defn(name="BareSaga")
class BareSaga:
    """Five activities one after another, the same options as TransferSaga's steps."""

    @workflow.run
    async def run(self, command: TransferMoney) -> int:
        for _ in range(ACTIVITIES):
            await workflow.execute_activity(
                noop,
                command,
                start_to_close_timeout=COMMAND_TIMEOUT,
                retry_policy=COMMAND_RETRY,
            )
        return 0


# ---------------------------------------------------------------------------------------
# Instruments: activity times (worker interceptor), database statements (engine events),
# process RSS, CPU and event-loop lag (a sampler task).


@dataclass(frozen=True)
class ActivityRecord:
    task_queue: str
    activity_type: str
    attempt: int
    queued: float
    """From the attempt's scheduled time (server clock) to the start in the worker, s."""
    executed: float
    """The activity function's own time, s."""


class ActivityTimes(temporal_client.Interceptor, temporal_worker.Interceptor):
    """Records every activity execution of the workers built on the client carrying it."""

    def __init__(self) -> None:
        self.records: list[ActivityRecord] = []

    def intercept_activity(
        self, next: temporal_worker.ActivityInboundInterceptor
    ) -> temporal_worker.ActivityInboundInterceptor:
        return _TimedActivity(next, self.records)


class _TimedActivity(temporal_worker.ActivityInboundInterceptor):
    def __init__(
        self, next: temporal_worker.ActivityInboundInterceptor, records: list[ActivityRecord]
    ) -> None:
        super().__init__(next)
        self._records = records

    async def execute_activity(self, input: temporal_worker.ExecuteActivityInput) -> Any:
        info = activity.info()
        queued = (datetime.now(UTC) - info.current_attempt_scheduled_time).total_seconds()
        started = time.perf_counter()
        try:
            return await self.next.execute_activity(input)
        finally:
            self._records.append(
                ActivityRecord(
                    info.task_queue,
                    info.activity_type,
                    info.attempt,
                    queued,
                    time.perf_counter() - started,
                )
            )


@dataclass
class DatabaseCounts:
    """What the worker's engine did: statements, their wall time, transactions, errors."""

    statements: int = 0
    statement_seconds: float = 0.0
    checkouts: int = 0
    commits: int = 0
    rollbacks: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)


def count_database(engine: AsyncEngine, counts: DatabaseCounts) -> None:
    """Attach listeners to the engine; each statement's wall time includes event-loop waits."""
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    @event.listens_for(sync_engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counts.statements += 1
        counts.statement_seconds += time.perf_counter() - conn.info.pop("bench_started")
        counts.kinds[statement_kind(statement)] += 1

    @event.listens_for(sync_engine, "handle_error")
    def failed(context: Any) -> None:
        conn = context.connection
        if conn is not None:
            conn.info.pop("bench_started", None)
        sqlstate = getattr(context.original_exception, "sqlstate", None)
        counts.errors[str(sqlstate or type(context.original_exception).__name__)] += 1

    @event.listens_for(sync_engine, "commit")
    def committed(conn: Any) -> None:
        counts.commits += 1

    @event.listens_for(sync_engine, "rollback")
    def rolled_back(conn: Any) -> None:
        counts.rollbacks += 1

    @event.listens_for(sync_engine.pool, "checkout")
    def checked_out(*args: Any) -> None:
        counts.checkouts += 1


def statement_kind(statement: str) -> str:
    """A short label: the append function, or the table a SELECT reads."""
    flat = " ".join(statement.split())
    if "sagaline_append" in flat:
        return "append"
    if flat.startswith("SELECT") and " FROM " in flat:
        return "select " + flat.split(" FROM ", 1)[1].split(" ", 1)[0]
    return flat.split(" ", 1)[0].lower()


class Sampler:
    """Samples this process's RSS, the Temporal server's RSS and the event loop's lag."""

    def __init__(self, server_pid: int) -> None:
        self.process = psutil.Process()
        self.server = psutil.Process(server_pid)
        self.peak_rss = 0
        self.peak_server_rss = 0
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def start(self) -> None:
        self.peak_rss = self.rss()
        self.peak_server_rss = int(self.server.memory_info().rss)
        self.lags = []
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + SAMPLE_SECONDS
            await asyncio.sleep(SAMPLE_SECONDS)
            self.lags.append(max(0.0, loop.time() - expected))
            self.peak_rss = max(self.peak_rss, self.rss())
            self.peak_server_rss = max(self.peak_server_rss, int(self.server.memory_info().rss))


# ---------------------------------------------------------------------------------------
# Fixture and rounds.


async def open_accounts(repository: Repository, count: int) -> list[str]:
    """Users and their accounts, saved through the repository like any command would."""
    accounts: list[str] = []
    for _ in range(count):
        user = User(f"user-{uuid.uuid4()}")
        registered = user.register(f"{uuid.uuid4()}@example.com", "Bench Holder", "hash")
        await repository.save(
            user, lambda _: uuid.uuid4(), {}, claims=[email_key(registered.email)]
        )
        account = Account(f"account-{uuid.uuid4()}")
        account.open(user.id, "EUR", DAILY_LIMIT)
        account.deposit(BALANCE)
        await repository.save(account, lambda _: uuid.uuid4(), {})
        accounts.append(account.id)
    return accounts


@dataclass
class Round:
    side: str
    workflows: int
    seconds: float
    latencies: list[float]
    peak_rss: int
    rss_at_start: int
    peak_server_rss: int
    cpu_seconds: float
    server_cpu_seconds: float
    lag_max: float
    lag_mean: float
    statuses: Counter[str]

    @property
    def rate(self) -> float:
        return self.workflows / self.seconds


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


Starter = Callable[[], Awaitable[str]]


async def run_round(side: str, starters: list[Starter], sampler: Sampler) -> Round:
    """Start every workflow at once and wait for all; latency is start call to result."""
    loop = asyncio.get_running_loop()
    cpu = sampler.process.cpu_times()
    server_cpu = sampler.server.cpu_times()
    rss_at_start = sampler.rss()
    sampler.start()

    async def one(start: Starter) -> tuple[float, str]:
        began = loop.time()
        status = await start()
        return loop.time() - began, status

    began = loop.time()
    try:
        results = await asyncio.gather(*(one(s) for s in starters))
    finally:
        await sampler.stop()
    seconds = loop.time() - began
    cpu_after = sampler.process.cpu_times()
    server_after = sampler.server.cpu_times()
    lags = sampler.lags or [0.0]
    return Round(
        side=side,
        workflows=len(starters),
        seconds=seconds,
        latencies=[latency for latency, _ in results],
        peak_rss=sampler.peak_rss,
        rss_at_start=rss_at_start,
        peak_server_rss=sampler.peak_server_rss,
        cpu_seconds=(cpu_after.user + cpu_after.system) - (cpu.user + cpu.system),
        server_cpu_seconds=(server_after.user + server_after.system)
        - (server_cpu.user + server_cpu.system),
        lag_max=max(lags),
        lag_mean=sum(lags) / len(lags),
        statuses=Counter(status for _, status in results),
    )


class Sides:
    """Makes the workflows of each side: transfers, or bare workflows with the same input."""

    def __init__(
        self, client: Client, accounts: list[str], project_queue: str, baseline_queue: str
    ) -> None:
        self.client = client
        self.accounts = accounts
        self.project_queue = project_queue
        self.baseline_queue = baseline_queue
        self.random = random.Random(20261128)

    def command(self) -> TransferMoney:
        source, destination = self.random.sample(self.accounts, 2)
        return TransferMoney(f"transfer-{uuid.uuid4()}", source, destination, AMOUNT, DAY)

    def transfer(self) -> Starter:
        command = self.command()

        async def start() -> str:
            # Started as the API starts it: with the saga's search attributes.
            outcome: TransferOutcome = await self.client.execute_workflow(
                TransferSaga.run,
                command,
                id=transfer_workflow_id(command.transfer_id),
                task_queue=self.project_queue,
                search_attributes=search_attributes.at_start(
                    command.transfer_id,
                    [command.transfer_id, command.from_account_id, command.to_account_id],
                    SAGA_TYPE,
                ),
            )
            return outcome.status

        return start

    def bare(self) -> Starter:
        command = self.command()

        async def start() -> str:
            await self.client.execute_workflow(
                BareSaga.run,
                command,
                id=f"bare/{command.transfer_id}",
                task_queue=self.baseline_queue,
            )
            return "COMPLETED"

        return start

    def starters(self, side: str, count: int) -> list[Starter]:
        make = self.transfer if side == "project" else self.bare
        return [make() for _ in range(count)]


# ---------------------------------------------------------------------------------------
# Summaries.


def activity_summary(
    records: list[ActivityRecord], queue: str, workflows: int
) -> dict[str, dict[str, float]]:
    """Per activity type: mean execution and queue time (ms), and attempts beyond the first."""
    by_type: dict[str, list[ActivityRecord]] = defaultdict(list)
    for record in records:
        if record.task_queue == queue:
            by_type[record.activity_type].append(record)
    summary: dict[str, dict[str, float]] = {}
    for name, rows in by_type.items():
        summary[name] = {
            "mean_exec_ms": round(1000 * sum(r.executed for r in rows) / len(rows), 2),
            "p50_exec_ms": round(1000 * median([r.executed for r in rows]), 2),
            "mean_queue_ms": round(1000 * sum(r.queued for r in rows) / len(rows), 2),
            "retries": sum(1 for r in rows if r.attempt > 1),
            "per_workflow": round(len(rows) / workflows, 2),
        }
    return summary


def per_workflow_ms(records: list[ActivityRecord], queue: str, workflows: int) -> dict[str, float]:
    """Summed activity execution and queue time per workflow, ms."""
    rows = [r for r in records if r.task_queue == queue]
    return {
        "activity_exec_ms": round(1000 * sum(r.executed for r in rows) / workflows, 2),
        "activity_queue_ms": round(1000 * sum(r.queued for r in rows) / workflows, 2),
    }


def side_figures(rounds: list[Round]) -> dict[str, Any]:
    """Medians over a side's rounds."""
    mib = 1024 * 1024
    return {
        "rate": median([r.rate for r in rounds]),
        "p50_ms": median([1000 * percentile(r.latencies, 0.5) for r in rounds]),
        "p99_ms": median([1000 * percentile(r.latencies, 0.99) for r in rounds]),
        "peak_rss_mib": max(r.peak_rss for r in rounds) / mib,
        "rss_delta_in_flight_mib": median([(r.peak_rss - r.rss_at_start) / mib for r in rounds]),
        "temporal_server_peak_rss_mib": max(r.peak_server_rss for r in rounds) / mib,
        "cpu_ms_per_workflow": median([1000 * r.cpu_seconds / r.workflows for r in rounds]),
        "temporal_server_cpu_ms_per_workflow": median(
            [1000 * r.server_cpu_seconds / r.workflows for r in rounds]
        ),
        "loop_lag_max_ms": median([1000 * r.lag_max for r in rounds]),
        "loop_lag_mean_ms": median([1000 * r.lag_mean for r in rounds]),
        "samples": [round(r.rate, 1) for r in rounds],
    }


def database_summary(counts: DatabaseCounts, transfers: int) -> dict[str, Any]:
    return {
        "statements_per_transfer": round(counts.statements / transfers, 2),
        "statement_wall_ms_per_transfer": round(1000 * counts.statement_seconds / transfers, 2),
        "checkouts_per_transfer": round(counts.checkouts / transfers, 2),
        "commits_per_transfer": round(counts.commits / transfers, 2),
        "rollbacks_per_transfer": round(counts.rollbacks / transfers, 2),
        "statement_kinds_per_transfer": {
            kind: round(n / transfers, 2) for kind, n in counts.kinds.most_common()
        },
        "errors": dict(counts.errors),
    }


async def check_balances(repository: Repository, accounts: list[str]) -> Decimal:
    """Money is neither created nor lost: the balances add up to what was deposited."""
    total = Decimal("0.00")
    for account_id in accounts:
        total += (await repository.load(Account, account_id)).balance
    if total != BALANCE * len(accounts):
        raise RuntimeError(f"balances add up to {total}, not {BALANCE * len(accounts)}")
    return total


# ---------------------------------------------------------------------------------------


def quiet_core_logs() -> None:
    """The SDK core logs to stdout by default; send its errors to stderr, drop its warnings.

    Under load it warns once per activity that timed out while queued in the worker (those
    retries are counted in the result) and per slow workflow task.
    """
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(name)s: %(message)s")
    telemetry = TelemetryConfig(
        logging=LoggingConfig(
            filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"),
            forwarding=LogForwardingConfig(logger=logging.getLogger("temporal_core")),
        )
    )
    Runtime.set_default(Runtime(telemetry=telemetry))


async def main() -> None:
    quiet_core_logs()
    directory = Path(tempfile.mkdtemp(prefix="sagaline-bench-temporal-"))
    server = EmbeddedTemporal(
        directory / "temporal", free_port(), free_port(), in_memory=True, headless=True
    )
    progress("starting the Temporal dev server (in memory)")
    await server.start()
    try:
        async with bench_database() as url:
            await measure(url, server)
    finally:
        await server.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def measure(url: str, server: EmbeddedTemporal) -> None:
    engine = create_engine(url, pool_size=20)  # as runtime.worker.run_worker
    counts = DatabaseCounts()
    times = ActivityTimes()
    try:
        facts = await server_facts(engine)
        repository = Repository(PostgresEventStore(engine))
        accounts = await open_accounts(repository, ACCOUNTS)
        progress(f"{ACCOUNTS} accounts opened")

        plain = await connect(server.address, server.namespace)
        config = plain.config()
        config["interceptors"] = [times]
        client = Client(**config)
        project_queue = f"bench-saga-{uuid.uuid4().hex[:8]}"
        baseline_queue = f"bench-bare-{uuid.uuid4().hex[:8]}"
        settings = Settings(
            database_url=url,
            temporal_address=server.address,
            temporal_task_queue=project_queue,
            # The relay is never started here; its publisher is only built when it runs.
            kafka_bootstrap="127.0.0.1:9",
            snapshot_every="",
        )
        sampler = Sampler(server.pid)
        rss_before_workers = sampler.rss()
        project_worker = create_worker(settings, client, engine)
        baseline_worker = temporal_worker.Worker(
            client,
            task_queue=baseline_queue,
            workflows=[BareSaga],
            activities=[noop],
            graceful_shutdown_timeout=timedelta(seconds=5),
        )
        sides = Sides(client, accounts, project_queue, baseline_queue)
        freeze_startup_objects()  # as runtime.worker.run_worker, for both workers
        async with project_worker, baseline_worker:
            for side in ("project", "baseline"):
                warm = await run_round(side, sides.starters(side, WARMUP), sampler)
                progress(f"warm-up {side}: {warm.rate:.1f}/s")
            times.records.clear()
            count_database(engine, counts)

            rounds: dict[str, list[Round]] = {"project": [], "baseline": []}
            for index in range(ROUNDS):
                order = ["project", "baseline"] if index % 2 == 0 else ["baseline", "project"]
                for side in order:
                    result = await run_round(side, sides.starters(side, CONCURRENT), sampler)
                    rounds[side].append(result)
                    completed = Counter({"COMPLETED": CONCURRENT})
                    if side == "project" and result.statuses != completed:
                        raise RuntimeError(f"transfers ended {dict(result.statuses)}")
                progress(
                    f"round {index + 1}/{ROUNDS}: "
                    + ", ".join(
                        f"{s} {rounds[s][-1].rate:.1f}/s "
                        f"(p50 {1000 * percentile(rounds[s][-1].latencies, 0.5):.0f} ms)"
                        for s in order
                    )
                )
            transfers = CONCURRENT * ROUNDS
            loaded_records = list(times.records)
            loaded_db = database_summary(counts, transfers)

            # One at a time: latency without queueing, and the activities' unloaded cost.
            times.records.clear()
            serial: dict[str, list[float]] = {"project": [], "baseline": []}
            for _ in range(SERIAL):
                for side in ("project", "baseline"):
                    alone = await run_round(side, sides.starters(side, 1), sampler)
                    serial[side].append(alone.latencies[0])
            serial_records = list(times.records)
        await check_balances(repository, accounts)
        progress("every transfer completed; balances add up")
    finally:
        await engine.dispose()

    project = side_figures(rounds["project"])
    baseline = side_figures(rounds["baseline"])
    ratio = project["rate"] / baseline["rate"]
    paired = median(
        [p.rate / b.rate for p, b in zip(rounds["project"], rounds["baseline"], strict=True)]
    )
    mib = 1024 * 1024
    emit(
        {
            "bench": "saga_throughput",
            "value": rounded(project["rate"]),
            "unit": "transfers/s",
            "baseline": rounded(baseline["rate"]),
            "ratio": rounded(ratio),
            "goal": GOAL_RATIO,
            "goal_met": ratio >= GOAL_RATIO,
            "paired_ratio_median": rounded(paired),
            "p50_ms": rounded(project["p50_ms"]),
            "p99_ms": rounded(project["p99_ms"]),
            "baseline_p50_ms": rounded(baseline["p50_ms"]),
            "baseline_p99_ms": rounded(baseline["p99_ms"]),
            "serial_p50_ms": rounded(1000 * median(serial["project"])),
            "baseline_serial_p50_ms": rounded(1000 * median(serial["baseline"])),
            "memory": {
                "how": "in-process worker: psutil RSS of the bench process, sampled every 20 ms"
                " while a round's 100 workflows are in flight",
                "rss_before_workers_mib": round(rss_before_workers / mib, 1),
                "peak_rss_mib": round(project["peak_rss_mib"], 1),
                "rss_delta_in_flight_mib": round(project["rss_delta_in_flight_mib"], 1),
                "baseline_peak_rss_mib": round(baseline["peak_rss_mib"], 1),
                "baseline_rss_delta_in_flight_mib": round(baseline["rss_delta_in_flight_mib"], 1),
                "temporal_server_peak_rss_mib": round(project["temporal_server_peak_rss_mib"], 1),
            },
            "cpu_ms_per_workflow": {
                "process": rounded(project["cpu_ms_per_workflow"]),
                "baseline_process": rounded(baseline["cpu_ms_per_workflow"]),
                "temporal_server": rounded(project["temporal_server_cpu_ms_per_workflow"]),
                "baseline_temporal_server": rounded(
                    baseline["temporal_server_cpu_ms_per_workflow"]
                ),
            },
            "loop_lag_ms": {
                "max": rounded(project["loop_lag_max_ms"]),
                "mean": rounded(project["loop_lag_mean_ms"]),
                "baseline_max": rounded(baseline["loop_lag_max_ms"]),
                "baseline_mean": rounded(baseline["loop_lag_mean_ms"]),
            },
            "activities": activity_summary(loaded_records, project_queue, transfers),
            "baseline_activities": activity_summary(loaded_records, baseline_queue, transfers),
            "per_workflow": per_workflow_ms(loaded_records, project_queue, transfers),
            "baseline_per_workflow": per_workflow_ms(loaded_records, baseline_queue, transfers),
            "serial_activities": activity_summary(serial_records, project_queue, SERIAL),
            "serial_per_workflow": per_workflow_ms(serial_records, project_queue, SERIAL),
            "baseline_serial_per_workflow": per_workflow_ms(serial_records, baseline_queue, SERIAL),
            "database": loaded_db,
            "concurrent": CONCURRENT,
            "rounds": ROUNDS,
            "accounts": ACCOUNTS,
            "samples": {"project": project["samples"], "baseline": baseline["samples"]},
            "baseline_kind": "bare workflow, 5 sequential no-op activities, same options",
            **facts,
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
