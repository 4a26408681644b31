"""How the doctor words what it found: one line per check, what to do, and its exit status."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.relay_checkpoint import RelayStatus
from projections.projector import ProjectionFailure, ProjectionStatus
from runtime.config import Settings
from runtime.doctor.database_checks import DatabaseFacts, migrations, where
from runtime.doctor.examination import Targets, exit_status, follower_findings, report
from runtime.doctor.findings import Verdict, failure_text, not_checked, ok, problem
from runtime.doctor.temporal_checks import FollowerRun, TemporalFacts
from runtime.migrate import head_revision

QUEUE = "sagaline-followers"
RUNNING = FollowerRun(running=True, status="running", task_queue=QUEUE)
FOLLOWERS = {
    "projector/users": RUNNING,
    "projector/accounts": RUNNING,
    "relay": RUNNING,
    "pattern-detector": RUNNING,
}


def facts(*statuses: ProjectionStatus, relay: RelayStatus | None = None) -> DatabaseFacts:
    return DatabaseFacts([], list(statuses), relay or RelayStatus(head=10, position=10))


def test_a_healthy_report_is_all_ok_lines_and_exits_0() -> None:
    findings = [ok("postgres", "reachable at db:5432/sagaline"), ok("parked sagas", "none")]

    assert report(findings) == (
        "ok       postgres: reachable at db:5432/sagaline\n"
        "ok       parked sagas: none\n"
        "no problems found\n"
    )
    assert exit_status(findings) == 0


def test_a_problem_says_what_to_do_its_details_follow_and_the_exit_status_is_1() -> None:
    findings = [
        problem("parked sagas", "1 saga NEEDS_ATTENTION", "Retry it", ("http://ui/wf",)),
        not_checked("topic", "the broker is not reachable"),
        ok("postgres", "reachable"),
    ]

    assert report(findings).splitlines() == [
        "PROBLEM  parked sagas: 1 saga NEEDS_ATTENTION. Retry it",
        "           http://ui/wf",
        "--       topic: not checked: the broker is not reachable",
        "ok       postgres: reachable",
        "1 problem found",
    ]
    assert exit_status(findings) == 1
    assert exit_status([not_checked("topic", "broker down")]) == 0


def test_a_stopped_projection_names_its_event_and_the_commands_that_move_it_on() -> None:
    failure = ProjectionFailure(
        42, "e-1", "UserRegistered", "ValueError: bad email\nCONTEXT: more", datetime.now(UTC)
    )
    stopped = ProjectionStatus("users", 41, 3, failure)

    [users, relay, detector] = follower_findings(
        facts(stopped), TemporalFacts([], FOLLOWERS), ["users"], QUEUE
    )

    assert users.verdict is Verdict.PROBLEM
    assert users.lines() == [
        "PROBLEM  projection users: STOPPED at position 42 on UserRegistered (event e-1):"
        " ValueError: bad email. Fix the cause, then `sagaline projections retry users`"
        " (or `sagaline projections skip users` to pass over the event)"
    ]
    assert relay.lines() == ["ok       relay: running, position 10, lag 0"]
    assert detector.lines() == ["ok       pattern detector: running"]


def test_a_follower_whose_workflow_is_gone_or_failing_is_a_problem() -> None:
    followers = {
        "projector/users": FollowerRun(running=False, status="terminated"),
        "projector/accounts": FollowerRun(True, "running", "attempt 3 failed: no broker", QUEUE),
        "relay": RUNNING,
        "pattern-detector": RUNNING,
    }
    statuses = (ProjectionStatus("users", 5, 5, None), ProjectionStatus("accounts", 7, 3, None))

    users, accounts, *_ = follower_findings(
        facts(*statuses), TemporalFacts([], followers), ["users", "accounts"], QUEUE
    )

    assert users.lines() == [
        "PROBLEM  projection users: its workflow projector/users is terminated, position 5,"
        " lag 5. Start the followers (`sagaline followers`, or `sagaline up`); it starts them"
    ]
    assert accounts.verdict is Verdict.PROBLEM
    assert "running but failing (attempt 3 failed: no broker), position 7, lag 3" in accounts.says


def test_a_follower_still_on_the_shared_task_queue_is_a_problem_the_followers_fix() -> None:
    followers = {**FOLLOWERS, "relay": FollowerRun(True, "running", task_queue="sagaline")}

    _, relay, detector = follower_findings(
        facts(ProjectionStatus("users", 5, 0, None)), TemporalFacts([], followers), ["users"], QUEUE
    )

    assert relay.lines() == [
        "PROBLEM  relay: runs on task queue sagaline, not the followers' sagaline-followers,"
        " position 10, lag 0. Start the followers (`sagaline followers`, or `sagaline up`);"
        " it moves them onto their task queue"
    ]
    assert detector.verdict is Verdict.OK


def test_without_temporal_the_positions_are_still_shown_and_without_postgres_they_are_not() -> None:
    unasked = TemporalFacts([], unasked_because="Temporal is not reachable")
    status = ProjectionStatus("users", 9, 1, None)

    users, _, detector = follower_findings(facts(status), unasked, ["users"], QUEUE)
    unread = DatabaseFacts([], unread_because="Postgres is not reachable")
    nothing = follower_findings(unread, unasked, ["users"], QUEUE)

    assert users.lines() == [
        "ok       projection users: position 9, lag 1 (whether it runs: Temporal is not reachable)"
    ]
    assert detector.verdict is Verdict.NOT_CHECKED
    assert [finding.verdict for finding in nothing] == [Verdict.NOT_CHECKED] * 3
    assert nothing[0].says == "not checked: Postgres is not reachable"


def test_migrations_are_current_behind_never_applied_or_from_a_newer_release() -> None:
    head = head_revision()

    assert migrations(head).verdict is Verdict.OK
    assert migrations("0001").todo == "Run `sagaline migrate`"
    assert f"at revision 0001, the code expects {head}" in migrations("0001").says
    assert migrations(None).says == "the database was never migrated"
    assert "does not know" in migrations("9999").says


def test_the_embedded_stack_is_found_on_up_s_ports_unless_addresses_are_set() -> None:
    embedded = Targets.from_settings(
        Settings(
            database_url=None,
            temporal_address=None,
            kafka_bootstrap=None,
            postgres_port=1111,
            temporal_port=2222,
            kafka_port=3333,
        )
    )
    external = Targets.from_settings(
        Settings(
            database_url="postgresql://app:secret@db.internal:6543/bank",
            temporal_address="temporal.internal:7233",
            kafka_bootstrap="kafka.internal:9092",
        )
    )

    assert embedded == Targets(
        "postgresql://postgres@127.0.0.1:1111/sagaline", "127.0.0.1:2222", "127.0.0.1:3333"
    )
    assert external.temporal_address == "temporal.internal:7233"
    assert external.kafka_bootstrap == "kafka.internal:9092"
    assert where(external.database_url) == "db.internal:6543/bank"


def test_failures_are_told_in_a_few_words() -> None:
    refused = OSError(
        "connection failed: connection to server at 127.0.0.1 port 1: Connection refused"
    )

    assert failure_text(TimeoutError(), 2.0) == "no answer within 2 s"
    assert failure_text(refused, 2.0) == "connection refused"
    assert failure_text(ValueError("odd\nsecond line"), 2.0) == "ValueError: odd"
