"""A business rejection travels one path, from the domain error to its GraphQL type."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.exceptions import ActivityError, ApplicationError

from activities.command_handling import rejections
from activities.transfers import refusals_named
from adapters.payloads import data_converter
from api.accounts.types import AccountClosedPayload, DepositMoneyPayload, OpenAccountPayload
from api.errors import (
    AccountNotFoundPayload,
    ConcurrencyConflictPayload,
    InsufficientFundsPayload,
    InvalidInputPayload,
    UserLockedPayload,
)
from api.rejections import PAYLOADS, invalid_input, payload, payload_of, rejection_payload
from api.transfers.types import TransferMoneyPayload
from api.users.types import EmailAlreadyInUsePayload, RegisterUserPayload
from domain.accounts import (
    AccountClosedError,
    AccountNotFound,
    BalanceCeilingExceeded,
    BalanceNotZero,
    DailyLimitExceeded,
    InsufficientFunds,
)
from domain.errors import ConcurrencyConflict, DomainError, InvalidInput
from domain.rejections import REJECTION_CODES, REJECTIONS
from domain.transfers import TransferStep, transfer_id_in_use
from domain.users import EmailAlreadyInUse, UserLockedError, UserNotFound
from workflows.command_outcomes import (
    COMMAND_RETRY,
    CommandOutcome,
    Rejection,
    refusing_step,
    rejection_of,
)
from workflows.transfers import COMPENSATION_RETRY

ONE_OF_EACH_ANSWERED: list[DomainError] = [
    InvalidInput("amount", "must be greater than zero"),
    ConcurrencyConflict("user-1", 3, 4),
    AccountNotFound("account-1"),
    AccountClosedError("account-1"),
    InsufficientFunds("account-1", Decimal("5.00"), Decimal("9.00")),
    BalanceNotZero("account-1", Decimal("5.00")),
    BalanceCeilingExceeded("account-1", Decimal("999999999.00"), Decimal("2.00")),
    EmailAlreadyInUse("ada@example.com"),
    UserNotFound("user-1"),
    UserLockedError("user-1"),
]


def activity_failure(cause: ApplicationError) -> ActivityError:
    """The error a workflow sees when an activity fails with `cause`."""
    failure = ActivityError(
        "activity failed",
        scheduled_event_id=1,
        started_event_id=2,
        identity="worker",
        activity_type="any",
        activity_id="1",
        retry_state=None,
    )
    failure.__cause__ = cause
    return failure


def through_an_activity(error: DomainError) -> Rejection:
    """What a workflow makes of the domain error an activity raised."""
    with pytest.raises(ApplicationError) as raised, rejections("command-1", REJECTIONS):
        raise error
    assert raised.value.non_retryable
    rejection = rejection_of(activity_failure(raised.value))
    assert rejection is not None
    return rejection


def _subclasses(cls: type[DomainError]) -> set[type[DomainError]]:
    direct = set(cls.__subclasses__())
    return direct.union(*(_subclasses(sub) for sub in direct))


def test_every_domain_error_is_a_known_rejection_with_its_own_code() -> None:
    assert _subclasses(DomainError) == set(REJECTIONS)
    assert len(set(REJECTION_CODES)) == len(REJECTIONS)


def test_rejection_codes_are_the_names_clients_and_stored_events_know() -> None:
    assert set(REJECTION_CODES) == {
        "InvalidInput",
        "ConcurrencyConflict",
        "AccountNotFound",
        "AccountAlreadyExists",
        "AccountClosed",
        "InsufficientFunds",
        "DailyLimitExceeded",
        "BalanceNotZero",
        "BalanceCeilingExceeded",
        "CurrencyMismatch",
        "EmailAlreadyInUse",
        "UserNotFound",
        "UserAlreadyExists",
        "UserLocked",
        "SameAccountTransfer",
        "NotTheTransfersAccount",
        "TransferNotFound",
    }


def test_no_business_rejection_is_retried_by_a_command_or_a_compensation() -> None:
    for policy in (COMMAND_RETRY, COMPENSATION_RETRY):
        assert set(policy.non_retryable_error_types or []) == set(REJECTION_CODES)


@pytest.mark.parametrize("error", ONE_OF_EACH_ANSWERED, ids=lambda e: e.code)
def test_a_rejection_from_a_workflow_answers_as_the_error_itself_would(
    error: DomainError,
) -> None:
    rejection = through_an_activity(error)
    assert rejection.type == error.code
    answered = payload_of(error)
    assert isinstance(answered, PAYLOADS[type(error)])
    assert answered.message == error.message
    assert payload(PAYLOADS[type(error)], rejection) == answered


def test_every_error_with_a_graphql_type_is_exercised() -> None:
    assert {type(error) for error in ONE_OF_EACH_ANSWERED} == set(PAYLOADS)


def test_a_taken_email_answers_with_the_address_it_carried() -> None:
    rejection = through_an_activity(EmailAlreadyInUse("ada@example.com"))
    assert rejection_payload(rejection, RegisterUserPayload, repr) == EmailAlreadyInUsePayload(
        message="email ada@example.com is already in use", email="ada@example.com"
    )


def test_an_invalid_field_from_a_workflow_names_the_field() -> None:
    rejection = through_an_activity(InvalidInput("email", "is not a valid email address"))
    assert rejection_payload(rejection, RegisterUserPayload, repr) == InvalidInputPayload(
        message="email: is not a valid email address", field="email"
    )


def test_a_closed_account_answers_without_account_or_position() -> None:
    rejection = through_an_activity(AccountClosedError("account-1"))
    assert rejection_payload(rejection, DepositMoneyPayload, repr) == AccountClosedPayload(
        message="account account-1 is closed"
    )


def test_a_rejection_outside_the_payload_union_is_answered_by_the_callers_fallback() -> None:
    rejection = through_an_activity(InsufficientFunds("a-1", Decimal("1.00"), Decimal("2.00")))
    assert rejection_payload(rejection, OpenAccountPayload, lambda r: r.type) == "InsufficientFunds"


def test_a_transfer_answers_its_union_members_and_names_any_other_rejection_as_reason() -> None:
    def reason(rejection: Rejection) -> str:
        return rejection.type

    not_found = Rejection("AccountNotFound", "account a-1 not found")
    insufficient = Rejection("InsufficientFunds", "account a-1 has 1.00, cannot withdraw 2.00")
    locked = Rejection(UserLockedError.code, "user u-1 is locked")
    limit = Rejection(DailyLimitExceeded.code, "account a-1 may send 0 more today, not 5")
    answers = [
        rejection_payload(r, TransferMoneyPayload, otherwise=reason)
        for r in (not_found, insufficient, locked, limit)
    ]
    assert answers == [
        AccountNotFoundPayload(message="account a-1 not found"),
        InsufficientFundsPayload(message="account a-1 has 1.00, cannot withdraw 2.00"),
        "UserLocked",
        "DailyLimitExceeded",
    ]


def test_a_locked_user_and_a_conflict_answer_with_their_messages() -> None:
    assert payload_of(UserLockedError("u-1")) == UserLockedPayload(message="user u-1 is locked")
    assert payload_of(ConcurrencyConflict("u-1", 1, 2)) == ConcurrencyConflictPayload(
        message="u-1 is at version 2, not the expected version 1"
    )


def test_an_outcome_recorded_before_rejections_carried_details_still_reads() -> None:
    recorded = {
        "result": None,
        "rejection": {"type": "UserNotFound", "message": "m", "field": None},
    }
    payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(recorded).encode())
    [outcome] = data_converter().payload_converter.from_payloads([payload], [CommandOutcome])
    assert outcome == CommandOutcome(rejection=Rejection("UserNotFound", "m"))


def test_an_activity_failure_that_is_not_a_rejection_is_no_outcome() -> None:
    outage = ApplicationError("database down", type="OperationalError")
    assert rejection_of(activity_failure(outage)) is None


def test_a_transfer_id_refused_by_the_saga_answers_as_the_api_check_does() -> None:
    # A stream made under the transferId after the API's check: the first step refuses it.
    rejection = through_an_activity(transfer_id_in_use())
    answered = rejection_payload(rejection, TransferMoneyPayload, repr)
    assert (
        answered
        == invalid_input(transfer_id_in_use())
        == InvalidInputPayload(
            message="transferId: is in use by another stream; choose another", field="transferId"
        )
    )


@pytest.mark.parametrize("named", [True, False])
def test_a_refusal_inside_a_named_step_tells_the_workflow_which_step_refused(named: bool) -> None:
    error = DailyLimitExceeded("account-1", Decimal("5.00"), Decimal("30.00"))
    with pytest.raises(ApplicationError) as raised, rejections("command-1", REJECTIONS):
        if named:
            with refusals_named(TransferStep.RESERVE_DAILY_LIMIT):
                raise error
        raise error
    failure = activity_failure(raised.value)

    assert refusing_step(failure) == ("reserve_daily_limit" if named else None)
    # The rejection itself, its facts included, is what it is without the name.
    rejection = rejection_of(failure)
    assert rejection is not None
    assert (rejection.type, rejection.details) == ("DailyLimitExceeded", error.details)
