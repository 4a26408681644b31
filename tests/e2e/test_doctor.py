"""`sagaline doctor` against the running stack: nothing wrong when it is healthy, and each of a
stopped projection, a parked saga, dead letters and a stopped broker named when it is not.

Each fault is made for the test alone and undone at its end, so the shared stack stays healthy:
a trigger refuses one user's row in the users read model (the projection stops on that event
until retried), a trigger refuses one account's refund (its transfer parks until retried), and
the broker that fails is one this test starts, not the stack's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from aiokafka import AIOKafkaProducer
from psycopg import sql

from adapters.database import create_engine
from adapters.kafka import ensure_topic
from projections import projector
from projections.projector import checkpoint_name
from runtime.config import Settings
from runtime.doctor.examination import examine, exit_status, report
from runtime.embedded.broker import EmbeddedBroker
from runtime.launcher import PROJECT_ROOT, sagaline_command
from runtime.ports import free_port
from tests.e2e.conftest import OPERATOR_TOKEN, Stack
from tests.e2e.test_bank_api import TRANSFER, payload
from tests.e2e.test_operations_api import (
    REGISTER,
    RETRY,
    refunds_failing,
    saga_with_status,
    transfer_into_a_closed_account,
)
from tests.waiting import eventually

TOPIC = "sagaline.events"
DEAD_LETTER_TOPIC = "sagaline.events.dlq"
PARTITIONS = 6
CHECK_SECONDS = 2
# A doctor run starts an interpreter; on a loaded machine that alone takes seconds.
RUN_WITHIN = 60
HEALTHY_WITHIN = 60
"""Another test may just have disturbed the stack (killed its worker, paused Postgres)."""


@dataclass(frozen=True)
class Diagnosis:
    status: int
    output: str
    seconds: float

    def line(self, check: str) -> str:
        """The report's line for a check (its first line)."""
        found = [ln for ln in self.output.splitlines() if ln[9:].startswith(f"{check}:")]
        assert len(found) == 1, self.output
        return found[0]

    @property
    def problems(self) -> list[str]:
        return [ln for ln in self.output.splitlines() if ln.startswith("PROBLEM")]


async def run_doctor(stack: Stack) -> Diagnosis:
    """`sagaline doctor` run as a command in the stack's environment."""
    started = time.monotonic()
    result = await asyncio.to_thread(
        subprocess.run,
        [*sagaline_command("doctor"), "--within", str(CHECK_SECONDS)],
        cwd=PROJECT_ROOT,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=RUN_WITHIN,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return Diagnosis(result.returncode, result.stdout, time.monotonic() - started)


async def diagnose(stack: Stack, kafka_bootstrap: str | None = None) -> Diagnosis:
    """The doctor's examination of the stack, run in this process (no interpreter to start),
    with the settings `up` gives the stack's ports; the broker at `kafka_bootstrap` if given."""
    settings = Settings(
        data_dir=stack.data_dir,
        postgres_port=stack.ports.postgres,
        temporal_port=stack.ports.temporal,
        temporal_ui_port=stack.ports.temporal_ui,
        kafka_port=stack.ports.kafka,
        kafka_bootstrap=kafka_bootstrap,
    )
    started = time.monotonic()
    findings = await examine(settings, CHECK_SECONDS)
    return Diagnosis(exit_status(findings), report(findings), time.monotonic() - started)


async def diagnosis_where(
    wanted: str, within: float, diagnosis: Callable[[], Awaitable[Diagnosis]]
) -> Diagnosis:
    """The first diagnosis that holds `wanted` (a stack's state reaches Temporal's
    visibility and the followers a moment after it changed)."""
    last: list[Diagnosis] = []

    async def found() -> bool:
        last[:] = [await diagnosis()]
        return wanted in last[0].output

    try:
        await eventually(found, within, f"doctor reports {wanted!r}")
    except AssertionError as error:
        raise AssertionError(f"{error}; last report:\n{last[0].output if last else ''}") from None
    return last[0]


async def test_doctor_finds_nothing_wrong_with_the_healthy_stack(stack: Stack) -> None:
    healthy = await diagnosis_where("no problems found", HEALTHY_WITHIN, lambda: run_doctor(stack))

    assert healthy.status == 0, healthy.output
    lines = healthy.output.splitlines()
    assert all(line.startswith("ok ") for line in lines[:-1]), healthy.output
    checks = ("postgres", "migrations", "temporal", "workers", "followers process", "relay")
    for check in (*checks, "dead letters"):
        assert healthy.line(check).startswith("ok "), healthy.output
    assert "search attributes: registered (SagaType, SagaStatus" in healthy.output
    assert f"topic: {TOPIC} has its {PARTITIONS} partitions" in healthy.output


@contextlib.contextmanager
def users_row_refused(stack: Stack, email: str) -> Iterator[None]:
    """Until the block ends, the users read model refuses the row of the user with `email`."""
    name = sql.Identifier(f"users_row_refused_{uuid.uuid4().hex}")
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql"
                " AS $$ BEGIN RAISE EXCEPTION 'this user is refused'"
                " USING ERRCODE = 'check_violation'; END $$"
            ).format(name=name)
        )
        conn.execute(
            sql.SQL(
                "CREATE TRIGGER {name} BEFORE INSERT OR UPDATE ON users FOR EACH ROW"
                " WHEN (NEW.email = {email}) EXECUTE FUNCTION {name}()"
            ).format(name=name, email=sql.Literal(email))
        )
        try:
            yield
        finally:
            conn.execute(sql.SQL("DROP TRIGGER {name} ON users").format(name=name))
            conn.execute(sql.SQL("DROP FUNCTION {name}()").format(name=name))


def registered_user(stack: Stack, email: str) -> tuple[str, int]:
    """The id and event position of the user registered with `email`."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT stream_id, position FROM events"
            " WHERE type = 'UserRegistered' AND data->>'email' = %s",
            (email,),
        ).fetchone()
    assert row is not None, f"no user registered with {email}"
    return str(row[0]), int(row[1])


def projection_failure(stack: Stack, projection: str) -> tuple[int, str] | None:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT position, event_id::text FROM projection_failures WHERE name = %s",
            (checkpoint_name(projection),),
        ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


async def test_doctor_names_a_stopped_projection_and_the_event_it_failed_on(stack: Stack) -> None:
    email = f"{uuid.uuid4()}@example.com"
    with users_row_refused(stack, email):
        # Stored, but never read back: the answer is an error, as the read model lacks it.
        stack.graphql(
            REGISTER, {"in": {"email": email, "name": "Refused", "password": "secret-pw"}}
        )
        user_id, position = registered_user(stack, email)

        async def stopped() -> bool:
            return projection_failure(stack, "users") is not None

        await eventually(stopped, 30, "the users projection stopped on the refused row")
        failure = projection_failure(stack, "users")
        assert failure is not None
        assert failure[0] == position
        found = await diagnose(stack)
    try:
        assert found.status == 1, found.output
        line = found.line("projection users")
        assert line.startswith("PROBLEM"), found.output
        assert f"STOPPED at position {position} on UserRegistered (event {failure[1]})" in line
        assert "this user is refused" in line
        assert "`sagaline projections retry users`" in line
        assert found.line("projection accounts").startswith("ok "), found.output
    finally:
        engine = create_engine(stack.database_url, pool_size=1)
        try:
            assert await projector.retry(engine, "users")
        finally:
            await engine.dispose()

    async def projected() -> bool:
        count = stack.sql("SELECT count(*) FROM users WHERE id = %s", user_id)
        return bool(count) and projection_failure(stack, "users") is None

    await eventually(projected, 30, "the retried users projection applied the user")


async def test_doctor_counts_a_parked_saga_and_links_it_in_the_temporal_ui(stack: Stack) -> None:
    into_closed = transfer_into_a_closed_account(stack)
    source, transfer_id, request = into_closed.source, into_closed.transfer_id, into_closed.request
    link = f"{stack.temporal_ui_url}/namespaces/default/workflows/" + quote(
        f"transfer/{transfer_id}", safe=""
    )
    with ThreadPoolExecutor(1) as background:
        with refunds_failing(stack, source):
            answer = background.submit(payload, stack, TRANSFER, "transferMoney", request)
            saga_with_status(stack, transfer_id, "NEEDS_ATTENTION")
            found = await diagnosis_where(link, 30, lambda: diagnose(stack))
        stack.data(RETRY, {"in": {"sagaId": transfer_id}}, token=OPERATOR_TOKEN)
        answer.result()
    saga_with_status(stack, transfer_id, "COMPENSATED")

    assert found.status == 1, found.output
    line = found.line("parked sagas")
    assert line.startswith("PROBLEM"), found.output
    assert "NEEDS_ATTENTION" in line
    assert "retrySaga" in line
    assert f"{'':11}{link}" in found.output.splitlines(), found.output


async def test_doctor_reports_dead_letters_and_a_stopped_broker_within_its_bound(
    stack: Stack,
) -> None:
    # A broker of this test's own: the stack's keeps running for the other tests.
    broker_dir = Path(tempfile.mkdtemp(prefix="sagaline-doctor-broker-"))
    broker = EmbeddedBroker(broker_dir, free_port())
    await broker.start()
    try:
        await ensure_topic(broker.bootstrap, TOPIC, PARTITIONS)
        await ensure_topic(broker.bootstrap, DEAD_LETTER_TOPIC, 1)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(DEAD_LETTER_TOPIC, b"{}")
        finally:
            await producer.stop()
        dead = await diagnose(stack, broker.bootstrap)
        assert dead.status == 1, dead.output
        assert dead.line("broker") == f"ok       broker: reachable at {broker.bootstrap}"
        assert dead.line("topic").startswith("ok "), dead.output
        assert dead.problems == [dead.line("dead letters")], dead.output
        assert f"1 message in {DEAD_LETTER_TOPIC}" in dead.line("dead letters")

        os.kill(broker.pid, signal.SIGSTOP)
        try:
            paused = await diagnose(stack, broker.bootstrap)
        finally:
            os.kill(broker.pid, signal.SIGCONT)
    finally:
        await broker.stop()
    stopped = await diagnose(stack, broker.bootstrap)

    for found in (paused, stopped):
        assert found.status == 1, found.output
        assert found.problems == [found.line("broker")], found.output
        assert found.line("topic").startswith("--"), found.output
        assert found.line("dead letters").startswith("--"), found.output
    assert f"not reachable at {broker.bootstrap} (no answer within {CHECK_SECONDS} s)" in (
        paused.line("broker")
    )
    assert "(connection refused)" in stopped.line("broker")
    assert "SAGALINE_KAFKA_BOOTSTRAP" in stopped.line("broker")
    # Bounded: the broker is given CHECK_SECONDS to answer, and as long to close.
    assert paused.seconds < 2 * CHECK_SECONDS + 3, paused
