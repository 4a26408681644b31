"""A command that fails for neither a rule nor an outage is tried a few times, then answered."""

from __future__ import annotations

import dataclasses
import typing

import psycopg
import psycopg.errors
import psycopg_pool
import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.command_handling import COMMAND_FAILED, FAILED_ATTEMPTS, rejections
from adapters.outages import is_outage
from api.accounts.types import (
    CloseAccountPayload,
    DepositMoneyPayload,
    OpenAccountPayload,
    WithdrawMoneyPayload,
)
from api.errors import CommandFailed
from api.transfers.types import TransferMoneyPayload
from api.users.types import ChangeUserEmailPayload, RegisterUserPayload, UnlockUserPayload
from tests.unit.test_rejections import activity_failure
from workflows.command_outcomes import failure_of, rejection_of


def wrapped(driver_error: Exception, kind: type[DBAPIError] = DBAPIError) -> DBAPIError:
    """A driver error as SQLAlchemy raises it."""
    return kind("INSERT INTO events ...", {}, driver_error)


OUTAGES: list[BaseException] = [
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),
    wrapped(psycopg.OperationalError("server closed the connection"), OperationalError),
    wrapped(psycopg.errors.AdminShutdown("terminating connection"), OperationalError),
    wrapped(psycopg.errors.ConnectionFailure("connection failure"), OperationalError),
    wrapped(psycopg.errors.TooManyConnections("too many clients"), OperationalError),
    wrapped(psycopg.errors.SerializationFailure("could not serialize"), OperationalError),
    KafkaConnectionError("no broker"),
    # Raised by psycopg itself, as the append path's own pool raises them.
    psycopg.OperationalError("connection failed: Connection refused"),
    psycopg.errors.AdminShutdown("terminating connection"),
    # Raised by psycopg itself on statements sent to the driver (projector, consumer).
    psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
    psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"),
    psycopg.errors.DeadlockDetected("deadlock detected"),
    psycopg.errors.SerializationFailure("could not serialize access"),
    psycopg_pool.PoolTimeout("couldn't get a connection after 10.00 sec"),
]
NOT_OUTAGES: list[BaseException] = [
    wrapped(psycopg.errors.CheckViolation("poisoned"), IntegrityError),
    wrapped(psycopg.errors.NotNullViolation("null value"), IntegrityError),
    wrapped(psycopg.errors.CharacterNotInRepertoire("invalid byte sequence"), DBAPIError),
    wrapped(psycopg.errors.UndefinedColumn("no such column"), DBAPIError),
    TypeError("unsupported operand"),
    KeyError("amount"),
    ValueError("not a number"),
    MessageSizeTooLargeError(),
]


@pytest.mark.parametrize("error", OUTAGES, ids=repr)
def test_an_unreachable_or_overloaded_service_is_an_outage(error: BaseException) -> None:
    assert is_outage(error)


@pytest.mark.parametrize("error", NOT_OUTAGES, ids=repr)
def test_bad_data_a_constraint_or_a_bug_is_not_an_outage(error: BaseException) -> None:
    assert not is_outage(error)


def test_an_error_caused_by_an_outage_is_an_outage() -> None:
    try:
        raise RuntimeError("could not load") from ConnectionResetError()
    except RuntimeError as error:
        assert is_outage(error)


def failure_on_attempt(
    attempt: int, error: Exception, failed_attempts: int = FAILED_ATTEMPTS
) -> BaseException:
    """What `rejections` makes of `error` raised in an activity's `attempt`-th attempt."""
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(environment.info, attempt=attempt)

    def run() -> None:
        with rejections("command-7", (), failed_attempts):
            raise error

    with pytest.raises(BaseException) as raised:
        environment.run(run)
    return raised.value


def test_a_failing_command_is_retried_until_its_last_attempt_then_fails_for_good() -> None:
    poison = wrapped(psycopg.errors.CheckViolation("poisoned"), IntegrityError)
    for attempt in range(1, FAILED_ATTEMPTS):
        early = failure_on_attempt(attempt, poison)
        assert isinstance(early, ApplicationError) and early.type == COMMAND_FAILED
        assert not early.non_retryable, attempt
    last = failure_on_attempt(FAILED_ATTEMPTS, poison)
    assert isinstance(last, ApplicationError) and last.type == COMMAND_FAILED
    assert last.non_retryable


def test_a_failing_command_fails_for_good_at_the_attempts_its_worker_was_given() -> None:
    poison = wrapped(psycopg.errors.CheckViolation("poisoned"), IntegrityError)
    first = failure_on_attempt(1, poison, failed_attempts=2)
    second = failure_on_attempt(2, poison, failed_attempts=2)
    assert isinstance(first, ApplicationError) and not first.non_retryable
    assert isinstance(second, ApplicationError) and second.non_retryable
    once = failure_on_attempt(1, poison, failed_attempts=1)
    assert isinstance(once, ApplicationError) and once.non_retryable


def test_an_outage_is_raised_as_it_is_however_many_attempts_it_took() -> None:
    outage = ConnectionRefusedError(111, "Connection refused")
    assert failure_on_attempt(FAILED_ATTEMPTS * 10, outage) is outage


def test_a_workflow_reads_a_failure_as_its_message_and_the_command_id() -> None:
    failed = failure_on_attempt(FAILED_ATTEMPTS, TypeError("unsupported operand"))
    assert isinstance(failed, ApplicationError)
    failure = failure_of(activity_failure(failed))
    assert failure is not None and failure.correlation_id == "command-7"
    assert "TypeError" in failure.message
    assert rejection_of(activity_failure(failed)) is None


@pytest.mark.parametrize(
    "union",
    [
        RegisterUserPayload,
        ChangeUserEmailPayload,
        UnlockUserPayload,
        OpenAccountPayload,
        DepositMoneyPayload,
        WithdrawMoneyPayload,
        CloseAccountPayload,
        TransferMoneyPayload,
    ],
)
def test_every_command_mutation_can_answer_command_failed(union: object) -> None:
    members, _ = typing.get_args(union)
    assert CommandFailed in typing.get_args(members)
