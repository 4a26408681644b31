"""Bank accounts: balances and a daily transfer limit.

A movement that belongs to a transfer names the transfer in its event. Whether a transfer
still owes a movement is the transfer's own record (domain/transfers.py), so an account keeps
nothing per transfer but the reservations that still count against its daily limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from domain.aggregate import Aggregate
from domain.errors import DomainError
from domain.events import DomainEvent, JsonDict, event_type
from domain.money import MAX_BALANCE
from domain.refusals import Refusal, RefusalKind

DEFAULT_DAILY_LIMIT = Decimal("10000.00")


class AccountStatus(StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"


@event_type
@dataclass(frozen=True)
class AccountOpened(DomainEvent):
    account_id: str
    owner_id: str
    currency: str
    daily_limit: Decimal


@event_type
@dataclass(frozen=True)
class MoneyDeposited(DomainEvent):
    account_id: str
    amount: Decimal
    transfer_id: str | None = None


@event_type
@dataclass(frozen=True)
class MoneyWithdrawn(DomainEvent):
    account_id: str
    amount: Decimal
    transfer_id: str | None = None


@event_type
@dataclass(frozen=True)
class TransferRefunded(DomainEvent):
    account_id: str
    transfer_id: str
    amount: Decimal


@event_type
@dataclass(frozen=True)
class DailyLimitReserved(DomainEvent):
    account_id: str
    transfer_id: str
    amount: Decimal
    day: str


@event_type
@dataclass(frozen=True)
class DailyLimitReleased(DomainEvent):
    account_id: str
    transfer_id: str
    amount: Decimal
    day: str


@event_type
@dataclass(frozen=True)
class AccountClosed(DomainEvent):
    account_id: str


@dataclass(frozen=True)
class OpenAccount:
    """Open an account for an existing, active user."""

    command_id: str
    account_id: str
    owner_id: str
    currency: str
    daily_limit: Decimal = DEFAULT_DAILY_LIMIT
    actor: str = "anonymous"


@dataclass(frozen=True)
class DepositMoney:
    """Put money into an open account."""

    command_id: str
    account_id: str
    amount: Decimal
    actor: str = "anonymous"


@dataclass(frozen=True)
class WithdrawMoney:
    """Take money out of an open account that holds enough."""

    command_id: str
    account_id: str
    amount: Decimal
    actor: str = "anonymous"


@dataclass(frozen=True)
class CloseAccount:
    """Close an account whose balance is zero."""

    command_id: str
    account_id: str
    actor: str = "anonymous"


class AccountNotFound(DomainError):
    def __init__(self, account_id: str) -> None:
        super().__init__(f"account {account_id} not found", account_id=account_id)


class AccountAlreadyExists(DomainError):
    def __init__(self, account_id: str) -> None:
        super().__init__(f"account {account_id} already exists", account_id=account_id)


class AccountClosedError(DomainError):
    code = "AccountClosed"

    def __init__(self, account_id: str) -> None:
        super().__init__(f"account {account_id} is closed", account_id=account_id)


class InsufficientFunds(DomainError):
    def __init__(self, account_id: str, balance: Decimal, amount: Decimal) -> None:
        self.refused(Refusal(RefusalKind.INSUFFICIENT_FUNDS, account_id, balance, amount))


class DailyLimitExceeded(DomainError):
    def __init__(self, account_id: str, remaining: Decimal, amount: Decimal) -> None:
        kind = RefusalKind.DAILY_LIMIT_EXCEEDED
        self.refused(Refusal(kind, account_id, amount=amount, remaining=remaining))


class BalanceNotZero(DomainError):
    def __init__(self, account_id: str, balance: Decimal) -> None:
        self.refused(Refusal(RefusalKind.BALANCE_NOT_ZERO, account_id, balance))


class BalanceCeilingExceeded(DomainError):
    """A deposit that would leave the account holding more than any account may."""

    def __init__(self, account_id: str, balance: Decimal, amount: Decimal) -> None:
        kind = RefusalKind.BALANCE_CEILING_EXCEEDED
        self.refused(Refusal(kind, account_id, balance, amount, ceiling=MAX_BALANCE))


class CurrencyMismatch(DomainError):
    def __init__(self, source: str, destination: str) -> None:
        super().__init__(f"cannot transfer {source} to an account in {destination}")


class Account(Aggregate):
    """Money held for an owner in one currency."""

    snapshot_every = 100
    snapshot_schema = 2

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.owner_id = ""
        self.currency = ""
        self.balance = Decimal("0.00")
        self.status = AccountStatus.OPEN
        self.daily_limit = DEFAULT_DAILY_LIMIT
        self.reservations: dict[str, tuple[str, Decimal]] = {}

    def open(self, owner_id: str, currency: str, daily_limit: Decimal) -> AccountOpened:
        if self.exists:
            raise AccountAlreadyExists(self.id)
        event = AccountOpened(self.id, owner_id, currency, daily_limit)
        self.record(event)
        return event

    def deposit(self, amount: Decimal, transfer_id: str | None = None) -> MoneyDeposited:
        """Add money, naming the transfer it comes from, if any."""
        self._require_open()
        if self.balance + amount > MAX_BALANCE:
            raise BalanceCeilingExceeded(self.id, self.balance, amount)
        event = MoneyDeposited(self.id, amount, transfer_id)
        self.record(event)
        return event

    def withdraw(self, amount: Decimal, transfer_id: str | None = None) -> MoneyWithdrawn:
        """Take money out, naming the transfer it goes to, if any."""
        self._require_open()
        if amount > self.balance:
            raise InsufficientFunds(self.id, self.balance, amount)
        event = MoneyWithdrawn(self.id, amount, transfer_id)
        self.record(event)
        return event

    def refund(self, transfer_id: str, amount: Decimal) -> TransferRefunded:
        """Give back what a transfer withdrew, even to an account closed since."""
        self._require_exists()
        event = TransferRefunded(self.id, transfer_id, amount)
        self.record(event)
        return event

    def reserve(self, transfer_id: str, amount: Decimal, day: str) -> DailyLimitReserved:
        """Count a transfer against the day's limit."""
        self._require_open()
        remaining = self.daily_limit - self.reserved_on(day)
        if amount > remaining:
            raise DailyLimitExceeded(self.id, remaining, amount)
        event = DailyLimitReserved(self.id, transfer_id, amount, day)
        self.record(event)
        return event

    def release(self, transfer_id: str) -> DailyLimitReleased | None:
        """Give back a transfer's reservation; nothing if it holds none (any more)."""
        self._require_exists()
        reservation = self.reservations.get(transfer_id)
        if reservation is None:
            return None
        day, amount = reservation
        event = DailyLimitReleased(self.id, transfer_id, amount, day)
        self.record(event)
        return event

    def close(self) -> AccountClosed:
        self._require_open()
        if self.balance != 0:
            raise BalanceNotZero(self.id, self.balance)
        event = AccountClosed(self.id)
        self.record(event)
        return event

    def reserved_on(self, day: str) -> Decimal:
        """How much of the day's limit transfers have taken."""
        return sum((a for d, a in self.reservations.values() if d == day), Decimal("0.00"))

    def _require_exists(self) -> None:
        if not self.exists:
            raise AccountNotFound(self.id)

    def _require_open(self) -> None:
        self._require_exists()
        if self.status is AccountStatus.CLOSED:
            raise AccountClosedError(self.id)

    def apply(self, event: DomainEvent) -> None:
        match event:
            case AccountOpened(owner_id=owner, currency=currency, daily_limit=limit):
                self.owner_id, self.currency, self.daily_limit = owner, currency, limit
            case MoneyDeposited(amount=amount) | TransferRefunded(amount=amount):
                self.balance += amount
            case MoneyWithdrawn(amount=amount):
                self.balance -= amount
            case DailyLimitReserved(transfer_id=transfer_id, amount=amount, day=day):
                # Only the newest day's reservations can still count against a limit.
                self.reservations = {
                    t: (d, a) for t, (d, a) in self.reservations.items() if d >= day
                }
                self.reservations[transfer_id] = (day, amount)
            case DailyLimitReleased(transfer_id=transfer_id):
                self.reservations.pop(transfer_id, None)
            case AccountClosed():
                self.status = AccountStatus.CLOSED
            case _:
                raise TypeError(f"Account cannot apply {type(event).__name__}")

    def snapshot_state(self) -> JsonDict:
        return {
            "owner_id": self.owner_id,
            "currency": self.currency,
            "balance": str(self.balance),
            "status": self.status.value,
            "daily_limit": str(self.daily_limit),
            "reservations": {t: [d, str(a)] for t, (d, a) in self.reservations.items()},
        }

    def restore_state(self, state: JsonDict) -> None:
        self.owner_id = state["owner_id"]
        self.currency = state["currency"]
        self.balance = Decimal(state["balance"])
        self.status = AccountStatus(state["status"])
        self.daily_limit = Decimal(state["daily_limit"])
        self.reservations = {t: (d, Decimal(a)) for t, (d, a) in state["reservations"].items()}
