"""The doctor's examination: where the deployment runs, every check at once, the report."""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass

from projections.catalog import projection_names
from runtime.config import Settings
from runtime.doctor import database_checks, temporal_checks
from runtime.doctor.broker_checks import BrokerExamination
from runtime.doctor.database_checks import DatabaseFacts
from runtime.doctor.findings import Finding, not_checked, ok, problem
from runtime.doctor.temporal_checks import START_THE_FOLLOWERS, FollowerRun, TemporalFacts
from workflows.followers import RELAY_WORKFLOW_ID, projector_workflow_id
from workflows.patterns import PATTERN_DETECTOR_WORKFLOW_ID

CHECK_SECONDS = 5.0
"""How long each check waits for an answer: a service that is down gets a line, not a hang."""
LOCALHOST = "127.0.0.1"
PATTERN_DETECTOR = "pattern detector"
QUIET_LOGGERS = ("aiokafka", "alembic", "temporalio")


@dataclass(frozen=True)
class Targets:
    """Where the deployment runs: the configured addresses, else those `sagaline up` uses."""

    database_url: str
    temporal_address: str
    kafka_bootstrap: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Targets:
        from runtime.embedded.postgres import database_url

        return cls(
            settings.database_url or database_url(settings.postgres_port),
            settings.temporal_address or f"{LOCALHOST}:{settings.temporal_port}",
            settings.kafka_bootstrap or f"{LOCALHOST}:{settings.kafka_port}",
        )


async def examine(settings: Settings, within: float = CHECK_SECONDS) -> list[Finding]:
    """Every check, the three services examined at once; the findings in report order."""
    targets = Targets.from_settings(settings)
    projections = projection_names()
    follower_ids = [
        *(projector_workflow_id(name) for name in projections),
        RELAY_WORKFLOW_ID,
        PATTERN_DETECTOR_WORKFLOW_ID,
    ]
    broker = BrokerExamination(targets.kafka_bootstrap, within)
    database, temporal, broker_findings = await asyncio.gather(
        database_checks.examine(targets.database_url, within),
        temporal_checks.examine(settings, targets.temporal_address, follower_ids, within),
        broker.run(
            settings.kafka_topic,
            settings.kafka_partitions,
            settings.kafka_topic + settings.kafka_dead_letter_suffix,
        ),
    )
    parked = [f for f in temporal.findings if f.check == temporal_checks.PARKED_SAGAS]
    return [
        *database.findings,
        *(f for f in temporal.findings if f not in parked),
        *follower_findings(database, temporal, projections, settings.followers_task_queue()),
        *parked,
        *broker_findings,
    ]


def follower_findings(
    database: DatabaseFacts, temporal: TemporalFacts, projections: list[str], task_queue: str
) -> list[Finding]:
    """One line per projection, the relay and the pattern detector: running (on the
    followers' `task_queue`), position, lag."""
    findings: list[Finding] = []
    positions = {status.name: status for status in database.projections}
    for name in projections:
        check = f"projection {name}"
        status = positions.get(name)
        run = temporal.followers.get(projector_workflow_id(name))
        if status is None:
            findings.append(not_checked(check, database.unread_because))
            continue
        where = f"position {status.position}, lag {status.lag}"
        failure = status.failure
        if failure is not None:
            findings.append(
                problem(
                    check,
                    f"STOPPED at position {failure.position} on {failure.event_type}"
                    f" (event {failure.event_id}): {_first_line(failure.error)}",
                    f"Fix the cause, then `sagaline projections retry {name}`"
                    f" (or `sagaline projections skip {name}` to pass over the event)",
                )
            )
            continue
        workflow_id = projector_workflow_id(name)
        findings.append(_follower(check, where, run, temporal, workflow_id, task_queue))
    relay = database.relay
    run = temporal.followers.get(RELAY_WORKFLOW_ID)
    if relay is None:
        findings.append(not_checked("relay", database.unread_because))
    else:
        where = f"position {relay.position}, lag {relay.lag}"
        if relay.recoveries:
            where += f", refilled a broker that lost events {relay.recoveries} times"
        findings.append(_follower("relay", where, run, temporal, RELAY_WORKFLOW_ID, task_queue))
    run = temporal.followers.get(PATTERN_DETECTOR_WORKFLOW_ID)
    detector = _follower(
        PATTERN_DETECTOR, "", run, temporal, PATTERN_DETECTOR_WORKFLOW_ID, task_queue
    )
    findings.append(detector)
    return findings


def _follower(
    check: str,
    where: str,
    run: FollowerRun | None,
    temporal: TemporalFacts,
    workflow_id: str,
    task_queue: str,
) -> Finding:
    suffix = f", {where}" if where else ""
    if run is None:
        if not where:
            return not_checked(check, temporal.unasked_because)
        return ok(check, f"{where} (whether it runs: {temporal.unasked_because})")
    if not run.running:
        return problem(
            check,
            f"its workflow {workflow_id} is {run.status}{suffix}",
            START_THE_FOLLOWERS + "; it starts them",
        )
    if run.task_queue != task_queue:
        return problem(
            check,
            f"runs on task queue {run.task_queue}, not the followers' {task_queue}{suffix}",
            START_THE_FOLLOWERS + "; it moves them onto their task queue",
        )
    if run.failing is not None:
        return problem(
            check,
            f"running but failing ({run.failing}){suffix}",
            "See the followers' log for the cause",
        )
    return ok(check, f"running{suffix}")


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def report(findings: list[Finding]) -> str:
    """The report: a line per check, then how many problems there are."""
    lines = [line for finding in findings for line in finding.lines()]
    problems = sum(finding.is_problem for finding in findings)
    if problems:
        lines.append(f"{problems} problem{'s' if problems != 1 else ''} found")
    else:
        lines.append("no problems found")
    return "\n".join(lines) + "\n"


async def run_doctor(settings: Settings, within: float | None = None) -> int:
    """Print the report; status 1 if anything is wrong, else 0."""
    # The report says what failed; the clients' own lines about it are noise beside it.
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    findings = await examine(settings, CHECK_SECONDS if within is None else within)
    sys.stdout.write(report(findings))
    return exit_status(findings)


def exit_status(findings: list[Finding]) -> int:
    """1 if any finding is a problem, else 0."""
    return 1 if any(finding.is_problem for finding in findings) else 0
