"""Every rejection a mutation's workflow can come back with answers a member of its union.

Each command activity names the rejections it may answer with (anything else fails as
CommandFailed); this holds every mutation to answering each of those with a typed member
other than CommandFailed, so a rejection added to an activity cannot reach a client as a
server error or an untyped failure.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import strawberry

from activities.accounts import (
    CLOSE_ACCOUNT_REJECTS,
    DEPOSIT_MONEY_REJECTS,
    OPEN_ACCOUNT_REJECTS,
    WITHDRAW_MONEY_REJECTS,
)
from activities.command_handling import Rejects, rejections
from activities.transfers import TRANSFER_REJECTS
from activities.users import (
    CHANGE_USER_EMAIL_REJECTS,
    REGISTER_USER_REJECTS,
    UNLOCK_USER_REJECTS,
)
from api.accounts.types import (
    CloseAccountPayload,
    DepositMoneyPayload,
    OpenAccountPayload,
    WithdrawMoneyPayload,
)
from api.errors import CommandFailed, InvalidInputPayload
from api.rejections import members, rejection_payload
from api.schema import build_schema
from api.transfers.mutations import transfer_rejection
from api.transfers.types import Transfer, TransferMoneyPayload, TransferStatus
from api.users.types import ChangeUserEmailPayload, RegisterUserPayload, UnlockUserPayload
from domain.accounts import (
    AccountAlreadyExists,
    AccountClosedError,
    AccountNotFound,
    BalanceCeilingExceeded,
    BalanceNotZero,
    CurrencyMismatch,
    DailyLimitExceeded,
    InsufficientFunds,
)
from domain.errors import ConcurrencyConflict, DomainError, InvalidInput
from domain.rejections import REJECTIONS
from domain.transfers import NotTheTransfersAccount, SameAccountTransfer, TransferNotFound
from domain.users import EmailAlreadyInUse, UserAlreadyExists, UserLockedError, UserNotFound
from tests.unit.test_rejections import activity_failure
from workflows.command_outcomes import Rejection, rejection_of

EXAMPLES: dict[type[DomainError], DomainError] = {
    InvalidInput: InvalidInput("email", "is not a valid email address"),
    ConcurrencyConflict: ConcurrencyConflict("user-1", 3, 4),
    AccountNotFound: AccountNotFound("account-1"),
    AccountAlreadyExists: AccountAlreadyExists("account-1"),
    AccountClosedError: AccountClosedError("account-1"),
    InsufficientFunds: InsufficientFunds("account-1", Decimal("5.00"), Decimal("9.00")),
    DailyLimitExceeded: DailyLimitExceeded("account-1", Decimal("1.00"), Decimal("9.00")),
    BalanceNotZero: BalanceNotZero("account-1", Decimal("5.00")),
    BalanceCeilingExceeded: BalanceCeilingExceeded("account-1", Decimal("1.00"), Decimal("2.00")),
    CurrencyMismatch: CurrencyMismatch("EUR", "USD"),
    EmailAlreadyInUse: EmailAlreadyInUse("ada@example.com"),
    UserNotFound: UserNotFound("user-1"),
    UserAlreadyExists: UserAlreadyExists("user-1"),
    UserLockedError: UserLockedError("user-1"),
    SameAccountTransfer: SameAccountTransfer("account-1"),
    NotTheTransfersAccount: NotTheTransfersAccount("transfer-1", "account-2"),
    TransferNotFound: TransferNotFound("transfer-1"),
}

COMMANDS: dict[str, tuple[Rejects, object]] = {
    "registerUser": (REGISTER_USER_REJECTS, RegisterUserPayload),
    "changeUserEmail": (CHANGE_USER_EMAIL_REJECTS, ChangeUserEmailPayload),
    "unlockUser": (UNLOCK_USER_REJECTS, UnlockUserPayload),
    "openAccount": (OPEN_ACCOUNT_REJECTS, OpenAccountPayload),
    "depositMoney": (DEPOSIT_MONEY_REJECTS, DepositMoneyPayload),
    "withdrawMoney": (WITHDRAW_MONEY_REJECTS, WithdrawMoneyPayload),
    "closeAccount": (CLOSE_ACCOUNT_REJECTS, CloseAccountPayload),
}
"""Each command mutation: the rejections of the activity its workflow runs, and its union."""

TRANSFERS = {"transferMoney"}
"""Answered by TransferSaga, whose steps may meet any rejection."""

NO_WORKFLOW_REJECTIONS = {"authenticate", "retrySaga", "rebuildProjection"}
"""Answer from what they check themselves (a sign-in records its attempt, whatever came of it)."""


def through_the_activity(error: DomainError, expected: Rejects) -> Rejection:
    """What the mutation's workflow comes back with when its activity meets `error`."""
    with pytest.raises(Exception) as raised, rejections("command-1", expected):
        raise error
    rejection = rejection_of(activity_failure(raised.value))  # type: ignore[arg-type]
    assert rejection is not None, f"{error.code} is not a rejection of this activity"
    return rejection


def unanswered(rejection: Rejection) -> object:
    raise AssertionError(f"no member of the union answers {rejection.type}")


def test_every_rejection_has_an_example() -> None:
    assert set(EXAMPLES) == set(REJECTIONS)


def test_every_mutation_is_audited_for_the_rejections_of_its_workflow() -> None:
    mutation_type = build_schema()._schema.mutation_type
    assert mutation_type is not None
    audited = set(COMMANDS) | TRANSFERS | NO_WORKFLOW_REJECTIONS
    assert set(mutation_type.fields) == audited


@pytest.mark.parametrize(
    ("mutation", "rejected"),
    [(m, error) for m, (expected, _) in COMMANDS.items() for error in expected],
    ids=lambda value: value if isinstance(value, str) else value.code,
)
def test_each_rejection_of_a_command_answers_a_typed_member_of_its_union(
    mutation: str, rejected: type[DomainError]
) -> None:
    expected, union = COMMANDS[mutation]
    rejection = through_the_activity(EXAMPLES[rejected], expected)
    answer = rejection_payload(rejection, union, unanswered)
    assert type(answer) in members(union) and not isinstance(answer, CommandFailed)


@pytest.mark.parametrize("rejected", TRANSFER_REJECTS, ids=lambda error: error.code)
def test_each_rejection_of_a_transfer_answers_a_typed_member_of_its_union(
    rejected: type[DomainError],
) -> None:
    rejection = through_the_activity(EXAMPLES[rejected], TRANSFER_REJECTS)
    transfer = Transfer(
        id=strawberry.ID("transfer-1"),
        from_account_id=strawberry.ID("account-1"),
        to_account_id=strawberry.ID("account-2"),
        amount=Decimal("1.00"),
        status=TransferStatus.REJECTED,
        stored_reason=rejection.message,
        stored_reason_details=rejection.details,
        steps=[],
        created_at=None,
        updated_at=None,
    )
    answer = transfer_rejection(rejection, transfer, "7")
    assert type(answer) in members(TransferMoneyPayload)
    assert not isinstance(answer, CommandFailed)


@pytest.mark.parametrize(
    ("existing", "union"),
    [
        (UserAlreadyExists("user-1"), RegisterUserPayload),
        (AccountAlreadyExists("a-1"), OpenAccountPayload),
    ],
)
def test_a_new_aggregate_that_exists_already_answers_that_the_command_id_was_used(
    existing: DomainError, union: object
) -> None:
    rejection = through_the_activity(existing, [type(existing)])
    assert rejection_payload(rejection, union, unanswered) == InvalidInputPayload(
        message="commandId: was already used by another command", field="commandId"
    )


def test_a_rejection_an_activity_does_not_name_fails_the_command_for_good() -> None:
    with pytest.raises(Exception) as raised, rejections("command-1", DEPOSIT_MONEY_REJECTS):
        raise InsufficientFunds("account-1", Decimal("1.00"), Decimal("2.00"))
    assert rejection_of(activity_failure(raised.value)) is None  # type: ignore[arg-type]
    assert getattr(raised.value, "type", None) == "CommandFailed"
    assert getattr(raised.value, "non_retryable", False)
