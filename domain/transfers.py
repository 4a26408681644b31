"""Money transfers between accounts, run as a saga; this is the transfer's own record.

Each saga step and compensation changes an account and records the step on the transfer in
one atomic save, so the transfer's record says which movements are still owed: a step or
compensation that runs again (a retry, an operator's redo) finds it done and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from domain.accounts import Account
from domain.aggregate import Aggregate
from domain.errors import DomainError, InvalidInput
from domain.events import DomainEvent, JsonDict, event_type


class TransferStatus(StrEnum):
    REQUESTED = "REQUESTED"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"


class TransferStep(StrEnum):
    """The saga's steps, in order."""

    RESERVE_DAILY_LIMIT = "reserve_daily_limit"
    WITHDRAW = "withdraw"
    DEPOSIT = "deposit"


@dataclass(frozen=True)
class TransferMoney:
    """Move an amount from one account to another; `day` is the day the limit applies to.

    `compensation_attempts` bounds how often the saga tries a failing compensation before it
    parks for an operator (None: the saga's own default).
    """

    transfer_id: str
    from_account_id: str
    to_account_id: str
    amount: Decimal
    day: str
    actor: str = "anonymous"
    compensation_attempts: int | None = None


@event_type
@dataclass(frozen=True)
class TransferRequested(DomainEvent):
    transfer_id: str
    from_account_id: str
    to_account_id: str
    amount: Decimal


@event_type
@dataclass(frozen=True)
class TransferStepCompleted(DomainEvent):
    transfer_id: str
    step: str


@event_type
@dataclass(frozen=True)
class TransferStepCompensated(DomainEvent):
    transfer_id: str
    step: str


@event_type
@dataclass(frozen=True)
class TransferCompleted(DomainEvent):
    transfer_id: str


@event_type
@dataclass(frozen=True)
class TransferRejected(DomainEvent):
    transfer_id: str
    reason: str
    error_type: str
    details: dict[str, str] | None = None
    """The rejection's details: a refusal's facts (domain/refusals.py), from which `reason`
    is made; none in events recorded before they were kept."""


class SameAccountTransfer(DomainError):
    def __init__(self, account_id: str) -> None:
        super().__init__(
            f"cannot transfer from account {account_id} to itself", account_id=account_id
        )


class NotTheTransfersAccount(DomainError):
    def __init__(self, transfer_id: str, account_id: str) -> None:
        super().__init__(
            f"account {account_id} is not an account of transfer {transfer_id}",
            transfer_id=transfer_id,
            account_id=account_id,
        )


class TransferNotFound(DomainError):
    def __init__(self, transfer_id: str) -> None:
        super().__init__(f"transfer {transfer_id} not found", transfer_id=transfer_id)


TRANSFER_ID_IN_USE = "is in use by another stream; choose another"
"""Why a transferId naming another aggregate's stream (an account's, a user's) is refused."""


def transfer_id_in_use() -> InvalidInput:
    """The rejection of a transferId whose stream holds another aggregate's events: the
    sender's bad input, answered before anything changes."""
    return InvalidInput("transferId", TRANSFER_ID_IN_USE)


class Transfer(Aggregate):
    """What happened to one transfer: its amount, its steps, their compensations, its end."""

    snapshot_schema = 3

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.status = TransferStatus.REQUESTED
        self.from_account_id = ""
        self.to_account_id = ""
        self.amount = Decimal("0.00")
        self.steps: list[str] = []
        self.compensated: list[str] = []

    def request(self, from_account_id: str, to_account_id: str, amount: Decimal) -> None:
        """Open the record (once); the saga's first step checks whether it may proceed."""
        if not self.exists:
            self.record(TransferRequested(self.id, from_account_id, to_account_id, amount))

    def reserve_daily_limit(self, source: Account, day: str) -> None:
        """Count the amount against the sender's limit for `day`, once."""
        self._require_account(source, self.from_account_id)
        if not self._completed(TransferStep.RESERVE_DAILY_LIMIT):
            source.reserve(self.id, self.amount, day)
            self.step_completed(TransferStep.RESERVE_DAILY_LIMIT)

    def release_daily_limit(self, source: Account) -> None:
        """Compensation: give the sender's reservation back, if this transfer made one."""
        self._require_account(source, self.from_account_id)
        if self._owes_compensation(TransferStep.RESERVE_DAILY_LIMIT):
            # A reservation of a day before the account's newest one no longer counts against
            # any limit and is gone from the account: the release then records nothing.
            source.release(self.id)
            self.step_compensated(TransferStep.RESERVE_DAILY_LIMIT)

    def withdraw(self, source: Account) -> None:
        """Take the amount from the sender, once."""
        self._require_account(source, self.from_account_id)
        if not self._completed(TransferStep.WITHDRAW):
            source.withdraw(self.amount, self.id)
            self.step_completed(TransferStep.WITHDRAW)

    def refund(self, source: Account) -> None:
        """Compensation: give the sender back what was withdrawn, if anything was."""
        self._require_account(source, self.from_account_id)
        if self._owes_compensation(TransferStep.WITHDRAW):
            source.refund(self.id, self.amount)
            self.step_compensated(TransferStep.WITHDRAW)

    def deposit(self, destination: Account) -> None:
        """Credit the amount to the receiver, once."""
        self._require_account(destination, self.to_account_id)
        if not self._completed(TransferStep.DEPOSIT):
            destination.deposit(self.amount, self.id)
            self.step_completed(TransferStep.DEPOSIT)

    def step_completed(self, step: TransferStep) -> None:
        if not self._completed(step):
            self.record(TransferStepCompleted(self.id, step.value))

    def step_compensated(self, step: TransferStep) -> None:
        self._require_exists()
        if self._owes_compensation(step):
            self.record(TransferStepCompensated(self.id, step.value))

    def complete(self) -> None:
        self._require_exists()
        if self.status is TransferStatus.REQUESTED:
            self.record(TransferCompleted(self.id))

    def reject(self, reason: str, error_type: str, details: dict[str, str] | None = None) -> None:
        """End rejected; a transfer refused before its record was opened still gets one."""
        self._require_exists()
        if self.status is TransferStatus.REQUESTED:
            self.record(TransferRejected(self.id, reason, error_type, details))

    def _completed(self, step: TransferStep) -> bool:
        self._require_exists()
        return step.value in self.steps

    def _owes_compensation(self, step: TransferStep) -> bool:
        """Whether the step happened and was not compensated yet."""
        return step.value in self.steps and step.value not in self.compensated

    def _require_exists(self) -> None:
        if not self.exists:
            raise TransferNotFound(self.id)

    def _require_account(self, account: Account, expected_id: str) -> None:
        """Money moves only on the accounts the transfer was requested between."""
        if self.exists and account.id != expected_id:
            raise NotTheTransfersAccount(self.id, account.id)

    def apply(self, event: DomainEvent) -> None:
        match event:
            case TransferRequested(
                from_account_id=source, to_account_id=destination, amount=amount
            ):
                self.from_account_id, self.to_account_id = source, destination
                self.amount = amount
            case TransferStepCompleted(step=step):
                self.steps.append(step)
            case TransferStepCompensated(step=step):
                self.compensated.append(step)
            case TransferCompleted():
                self.status = TransferStatus.COMPLETED
            case TransferRejected():
                self.status = TransferStatus.REJECTED
            case _ if type(event).__module__ != __name__:
                # The stream is another aggregate's: its id was chosen as a transferId.
                raise transfer_id_in_use()
            case _:
                raise TypeError(f"Transfer cannot apply {type(event).__name__}")

    def snapshot_state(self) -> JsonDict:
        return {
            "status": self.status.value,
            "from_account_id": self.from_account_id,
            "to_account_id": self.to_account_id,
            "amount": str(self.amount),
            "steps": list(self.steps),
            "compensated": list(self.compensated),
        }

    def restore_state(self, state: JsonDict) -> None:
        self.status = TransferStatus(state["status"])
        self.from_account_id = state["from_account_id"]
        self.to_account_id = state["to_account_id"]
        self.amount = Decimal(state["amount"])
        self.steps = list(state["steps"])
        self.compensated = list(state["compensated"])
