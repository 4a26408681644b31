"""Money transfers between accounts, run as a saga; this is the transfer's own record."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from domain.aggregate import Aggregate
from domain.errors import DomainError
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


class SameAccountTransfer(DomainError):
    def __init__(self, account_id: str) -> None:
        super().__init__(f"cannot transfer from account {account_id} to itself")


class TransferNotFound(DomainError):
    def __init__(self, transfer_id: str) -> None:
        super().__init__(f"transfer {transfer_id} not found")


class Transfer(Aggregate):
    """What happened to one transfer: its steps, their compensations, its end."""

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.status = TransferStatus.REQUESTED
        self.steps: list[str] = []
        self.compensated: list[str] = []

    def request(self, from_account_id: str, to_account_id: str, amount: Decimal) -> None:
        """Open the record (once); the saga's first step checks whether it may proceed."""
        if not self.exists:
            self.record(TransferRequested(self.id, from_account_id, to_account_id, amount))

    def step_completed(self, step: TransferStep) -> None:
        self._require_exists()
        if step.value not in self.steps:
            self.record(TransferStepCompleted(self.id, step.value))

    def step_compensated(self, step: TransferStep) -> None:
        self._require_exists()
        if step.value in self.steps and step.value not in self.compensated:
            self.record(TransferStepCompensated(self.id, step.value))

    def complete(self) -> None:
        self._require_exists()
        if self.status is TransferStatus.REQUESTED:
            self.record(TransferCompleted(self.id))

    def reject(self, reason: str, error_type: str) -> None:
        """End rejected; a transfer refused before its record was opened still gets one."""
        self._require_exists()
        if self.status is TransferStatus.REQUESTED:
            self.record(TransferRejected(self.id, reason, error_type))

    def _require_exists(self) -> None:
        if not self.exists:
            raise TransferNotFound(self.id)

    def apply(self, event: DomainEvent) -> None:
        match event:
            case TransferRequested():
                pass
            case TransferStepCompleted(step=step):
                self.steps.append(step)
            case TransferStepCompensated(step=step):
                self.compensated.append(step)
            case TransferCompleted():
                self.status = TransferStatus.COMPLETED
            case TransferRejected():
                self.status = TransferStatus.REJECTED
            case _:
                raise TypeError(f"Transfer cannot apply {type(event).__name__}")

    def snapshot_state(self) -> JsonDict:
        return {
            "status": self.status.value,
            "steps": list(self.steps),
            "compensated": list(self.compensated),
        }

    def restore_state(self, state: JsonDict) -> None:
        self.status = TransferStatus(state["status"])
        self.steps = list(state["steps"])
        self.compensated = list(state["compensated"])
