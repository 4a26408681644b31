"""One chaos run: the deployment, the bank workload, the faults while it runs, the invariants.

`run_chaos` returns a `Report` whose `checks` say what held; `Report.summary()` prints them
with every figure measured.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from tests.chaos import invariants
from tests.chaos.clients import Api, Tally
from tests.chaos.deployment import CLIENT_TOKEN, Deployment
from tests.chaos.faults import Failover, FaultPlan, FaultSchedule, FaultWindow
from tests.chaos.invariants import Check
from tests.chaos.workload import (
    OPENING_BALANCE,
    TRANSFER_WITHIN,
    Pacer,
    TransferAttempt,
    TransferClients,
    locks_after_failed_logins,
    open_accounts,
)

FAILOVER_BOUND = 8.0
"""Seconds within which a dead followers process's singletons run in the other one: the
followers' 3 s heartbeat timeout, their first retry after 0.5 s, and slack for a busy
machine."""
CEP_WITHIN = 120.0
"""Bound of the wait for three failed logins to lock their user."""
# The deployment's own settings: a mutation waits 5 s before answering pending.
DEPLOYMENT_SETTINGS = {"SAGALINE_COMMAND_TIMEOUT_SECONDS": "5", "SAGALINE_LOG_LEVEL": "INFO"}


@dataclass(frozen=True)
class ChaosConfig:
    """The size of one run."""

    workers: int = 2
    followers: int = 2
    apis: int = 2
    accounts: int = 40
    transfers: int = 1500
    clients: int = 12
    refusals: float = 0.05
    baseline_seconds: float = 20.0
    """Workload without faults first: the latency before faults."""
    planned_seconds: float = 240.0
    """The transfers are paced to last about this long; if the faults outlast it, more are
    sent at the same pace until they are over."""
    plan: FaultPlan = field(default_factory=FaultPlan)
    seed: int = 12


QUICK = ChaosConfig(
    accounts=20,
    transfers=60,
    baseline_seconds=10.0,
    planned_seconds=60.0,
    plan=FaultPlan(
        kill_every_worker=False, restart_after=3.0, broker_frozen_for=8.0, temporal_down_for=8.0
    ),
)


@dataclass
class Report:
    """What one run measured, and the verdict of every invariant."""

    config: ChaosConfig
    checks: list[Check] = field(default_factory=list)
    windows: list[FaultWindow] = field(default_factory=list)
    failovers: list[Failover] = field(default_factory=list)
    latency: dict[str, str] = field(default_factory=dict)
    answers: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    data_dir: Path | None = None

    @property
    def held(self) -> bool:
        return bool(self.checks) and all(check.held for check in self.checks)

    def summary(self) -> str:
        c = self.config
        lines = [
            f"chaos run: {c.workers} workers, {c.followers} followers processes, {c.apis} APIs,"
            f" {c.accounts} accounts, "
            f"{c.transfers} transfers from {c.clients} clients, {c.refusals:.0%} refused on "
            "purpose",
            "  " + ", ".join(f"{name} {value:.0f}s" for name, value in self.seconds.items()),
            "faults:",
        ]
        for w in self.windows:
            recovered = "NOT" if w.recovered_after is None else f"{w.recovered_after:.1f}s"
            lines.append(
                f"  {w.began:6.1f}-{w.ended:6.1f}s  {w.name}; work resumed after {recovered}"
            )
        lines.append("singleton failover (SIGKILL until another followers process runs it):")
        for f in self.failovers:
            parts = [
                f"{name} {'-' if s is None else f'{s:.1f}s'}" for name, s in f.resumed_after.items()
            ]
            relay = (
                "" if f.relay_moved_after is None else f"; relay moved {f.relay_moved_after:.1f}s"
            )
            lines.append(f"  {f.process}: {', '.join(parts) or 'ran no singleton'}{relay}")
        lines.append("latency of a transfer, first request to final answer:")
        lines += [f"  {phase}: {figures}" for phase, figures in self.latency.items()]
        lines.append(
            "answers seen by clients: "
            + ", ".join(f"{kind} {count}" for kind, count in sorted(self.answers.items()))
        )
        lines.append("invariants:")
        lines += [
            f"  {'PASS' if ch.held else 'FAIL'}  {ch.name}: {ch.detail}" for ch in self.checks
        ]
        verdict = "every invariant held" if self.held else "INVARIANTS VIOLATED"
        where = f" (data and logs kept in {self.data_dir})" if self.data_dir else ""
        lines.append(f"chaos: {verdict}{where}")
        return "\n".join(lines)


def latency_figures(attempts: list[TransferAttempt]) -> str:
    """p50 and p99 in seconds of the finished attempts, and how many there were."""
    values = sorted(a.latency for a in attempts if a.latency is not None)
    if len(values) < 2:
        return f"{len(values)} transfers"
    quantiles = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {quantiles[49]:.2f}s, p99 {quantiles[98]:.2f}s over {len(values)} transfers"


async def run_chaos(config: ChaosConfig, keep_data: bool = False) -> Report:
    """Run the whole suite once; the data dir is removed unless something failed."""
    report = Report(config)
    data_dir = Path(tempfile.mkdtemp(prefix="sagaline-chaos-"))
    deployment = Deployment(
        data_dir,
        workers=config.workers,
        followers=config.followers,
        apis=config.apis,
        settings=DEPLOYMENT_SETTINGS,
    )
    tally = Tally()
    api = Api(deployment.graphql_urls, CLIENT_TOKEN, tally)
    try:
        await _run(config, report, deployment, api)
    except Exception as error:
        traceback.print_exc()
        report.checks.append(Check("the run completed", False, repr(error)))
    finally:
        report.answers = dict(tally.answers)
        report.answers["unexpected"] = len(tally.unexpected)
        await api.close()
        await deployment.stop()
        if report.held and not keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            report.data_dir = data_dir
    return report


async def _run(config: ChaosConfig, report: Report, deployment: Deployment, api: Api) -> None:
    began = time.monotonic()
    await deployment.start()
    report.seconds["start"] = time.monotonic() - began
    run = uuid.uuid4().hex[:8]
    mark = time.monotonic()
    accounts = await open_accounts(api, run, config.accounts)
    report.seconds["open accounts"] = time.monotonic() - mark
    pacer = Pacer(config.transfers, config.transfers / config.planned_seconds)
    clients = TransferClients(
        api,
        run,
        accounts,
        pacer,
        clients=config.clients,
        refusals=config.refusals,
        seed=config.seed,
    )
    started = time.monotonic()
    workload = asyncio.create_task(clients.run_all())
    schedule = FaultSchedule(deployment, config.plan, lambda: clients.finished, started)
    try:
        await asyncio.sleep(config.baseline_seconds)
        faults_began = time.monotonic()
        await schedule.run()
        faults_ended = time.monotonic()
        pacer.release()
        await asyncio.wait_for(asyncio.shield(workload), TRANSFER_WITHIN)
    finally:
        report.windows, report.failovers = schedule.windows, schedule.failovers
        if not workload.done():
            workload.cancel()
    report.seconds["workload"] = time.monotonic() - started
    attempts = clients.attempts
    report.latency = {
        "before faults": latency_figures([a for a in attempts if a.started < faults_began]),
        "during faults": latency_figures(
            [a for a in attempts if faults_began <= a.started < faults_ended]
        ),
        "after faults": latency_figures([a for a in attempts if a.started >= faults_ended]),
    }
    mark = time.monotonic()
    report.checks += await _checks(config, report, deployment, api, accounts, attempts, run)
    report.seconds["checks"] = time.monotonic() - mark


async def _checks(
    config: ChaosConfig,
    report: Report,
    deployment: Deployment,
    api: Api,
    accounts: list[str],
    attempts: list[TransferAttempt],
    run: str,
) -> list[Check]:
    url = deployment.database_url
    died = deployment.died()
    checks = [Check("every process runs at the end", not died, f"exited: {died or 'none'}")]
    unrecovered = [w.name for w in report.windows if w.recovered_after is None]
    checks.append(
        Check(
            "work resumed after every fault",
            not unrecovered,
            f"{len(report.windows)} faults, not resumed after: {unrecovered or 'none'}",
        )
    )
    checks.append(await invariants.lag_zero(url))
    expected = OPENING_BALANCE * config.accounts
    checks.append(await invariants.money(api, url, accounts, Decimal(expected)))
    checks.append(await invariants.transfers_terminal(url, deployment.temporal.address, attempts))
    checks.append(await invariants.streams_sound(url))
    checks.append(await invariants.read_models_equal_rebuild(url))
    checks.append(await invariants.kafka_complete_and_ordered(url, deployment.broker.bootstrap))
    locked_after = await locks_after_failed_logins(api, run, CEP_WITHIN)
    checks.append(
        Check(
            "CEP detects after the faults",
            locked_after is not None,
            "three failed logins locked their user"
            + (f" after {locked_after:.1f}s" if locked_after is not None else " NOT within bound"),
        )
    )
    masked = api.tally.masked
    checks.append(
        Check(
            "no masked errors",
            not masked,
            f"{len(masked)} INTERNAL_SERVER_ERROR seen"
            + (f", e.g. at {masked[0].at:.0f}s: {masked[0].message}" if masked else ""),
        )
    )
    measured = [s for f in report.failovers for s in f.resumed_after.values()]
    slowest = max((s for s in measured if s is not None), default=None)
    unseen = sum(1 for s in measured if s is None)
    checks.append(
        Check(
            f"singleton failover within {FAILOVER_BOUND:g}s",
            bool(measured) and unseen == 0 and slowest is not None and slowest <= FAILOVER_BOUND,
            f"{len(measured)} singleton moves measured, slowest "
            f"{'-' if slowest is None else f'{slowest:.1f}s'}, {unseen} not seen",
        )
    )
    return checks
