"""Transfer saga activities: each step is one transaction over the account and the transfer.

Since the saga's steps share transactions (workflows/transfers.py), begin_and_reserve and
deposit_and_complete each run two steps in one transaction, with the events of both; since
the withdrawal shares the first one, begin_reserve_and_withdraw runs three.

The transfer's record says which steps it completed and compensated, and both streams are
appended atomically, so a retried step or a compensation of a step that never happened
changes no balance.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

from temporalio import activity

from activities.command_handling import (
    FAILED_ATTEMPTS,
    CommandResult,
    Load,
    Rejects,
    decide_and_save,
    with_retries,
)
from domain.accounts import Account, AccountNotFound, CurrencyMismatch
from domain.errors import DomainError
from domain.events import JsonDict
from domain.rejections import REJECTIONS
from domain.repository import EventIds, Repository
from domain.transfers import SameAccountTransfer, Transfer, TransferMoney, TransferStep
from domain.users import User

TRANSFER_REJECTS: Rejects = REJECTIONS
"""A saga step may meet any rejection: the saga decides what each means (compensate, park)."""


@dataclass(frozen=True)
class RejectTransfer:
    """Record why a transfer ended rejected."""

    command: TransferMoney
    reason: str
    error_type: str
    details: dict[str, str] | None = None
    """The rejection's details (a refusal's facts); none in histories from before."""


@contextmanager
def refusals_named(step: TransferStep) -> Iterator[None]:
    """Name `step` in a rejection raised inside, for an activity that runs several steps."""
    try:
        yield
    except DomainError as error:
        error.step = step.value
        raise


class TransferActivities:
    """The steps of TransferSaga and their compensations; a step that fails for neither a
    rule nor an outage is tried `attempts` times (SAGALINE_COMMAND_ATTEMPTS), then the saga
    parks (or, at its first step, fails)."""

    def __init__(self, repository: Repository, attempts: int = FAILED_ATTEMPTS) -> None:
        self._repository = repository
        self._attempts = attempts

    def all(self) -> list[Callable[..., Awaitable[int]]]:
        """Every activity of the saga, for a worker to register."""
        return [
            self.begin_transfer,
            self.begin_and_reserve,
            self.begin_reserve_and_withdraw,
            self.reserve_daily_limit,
            self.release_daily_limit,
            self.withdraw,
            self.refund,
            self.deposit,
            self.deposit_and_complete,
            self.complete_transfer,
            self.reject_transfer,
        ]

    @activity.defn
    async def begin_transfer(self, command: TransferMoney) -> int:
        """Check both accounts and the sender, then record the request.

        The API refuses a transferId naming another aggregate's stream before the saga
        starts; a stream made under it since is met here: loading the transfer from it
        raises InvalidInput on transferId (domain/transfers.py), a rejection the saga ends
        with at this first step, recording nothing.
        """
        return await self._begin(command, reserve=False)

    @activity.defn
    async def begin_and_reserve(self, command: TransferMoney) -> int:
        """begin_transfer and reserve_daily_limit in one transaction.

        A refusal by the reservation names its step (DomainError.step), so the saga tells it
        from a refusal by begin's checks; either way nothing is recorded, the transaction
        being one. What is recorded when both pass is what the two steps record.
        """
        return await self._begin(command, reserve=True)

    @activity.defn
    async def begin_reserve_and_withdraw(self, command: TransferMoney) -> int:
        """begin_transfer, reserve_daily_limit and withdraw in one transaction.

        A refusal by the reservation or the withdrawal names its step, as in
        begin_and_reserve; whichever refuses, nothing is recorded, the transaction being one.
        """
        return await self._begin(command, reserve=True, withdraw=True)

    async def _begin(self, command: TransferMoney, reserve: bool, withdraw: bool = False) -> int:
        async def attempt(ids: EventIds, metadata: JsonDict) -> CommandResult:
            loads: list[Load] = [
                (Transfer, command.transfer_id),
                (Account, command.from_account_id),
                (Account, command.to_account_id),
            ]
            # An account's owner never changes, so a cached sender names the user to check
            # and all four aggregates load in one read.
            known = self._repository.cached(Account, command.from_account_id)
            if known is not None:
                loads.append((User, known.owner_id))
            loaded = await self._repository.load_many(loads)
            transfer, source, destination = cast(tuple[Transfer, Account, Account], loaded[:3])
            if source.id == destination.id:
                raise SameAccountTransfer(source.id)
            for account in (source, destination):
                if not account.exists:
                    raise AccountNotFound(account.id)
            owner = loaded[3] if len(loaded) == 4 else None
            if not isinstance(owner, User) or owner.id != source.owner_id:
                owner = await self._repository.load(User, source.owner_id)
            owner.require_active()
            if source.currency != destination.currency:
                raise CurrencyMismatch(source.currency, destination.currency)
            transfer.request(command.from_account_id, command.to_account_id, command.amount)
            if not reserve:
                result = await self._repository.save_all([transfer], ids, metadata)
                return CommandResult(transfer.id, transfer.version, result.position)
            with refusals_named(TransferStep.RESERVE_DAILY_LIMIT):
                transfer.reserve_daily_limit(source, command.day)
            if withdraw:
                with refusals_named(TransferStep.WITHDRAW):
                    transfer.withdraw(source)
            result = await self._repository.save_all([source, transfer], ids, metadata)
            return CommandResult(transfer.id, transfer.version, result.position)

        return (
            await with_retries(
                command.transfer_id, command.actor, attempt, REJECTIONS, self._attempts
            )
        ).position

    @activity.defn
    async def reserve_daily_limit(self, command: TransferMoney) -> int:
        """Count the amount against the sender's daily limit."""

        def decide(source: Account, transfer: Transfer) -> None:
            transfer.reserve_daily_limit(source, command.day)

        return await self._step(command, command.from_account_id, decide)

    @activity.defn
    async def release_daily_limit(self, command: TransferMoney) -> int:
        """Compensation: give the reservation back."""

        def decide(source: Account, transfer: Transfer) -> None:
            transfer.release_daily_limit(source)

        return await self._step(command, command.from_account_id, decide)

    @activity.defn
    async def withdraw(self, command: TransferMoney) -> int:
        """Take the amount from the sender."""

        def decide(source: Account, transfer: Transfer) -> None:
            transfer.withdraw(source)

        return await self._step(command, command.from_account_id, decide)

    @activity.defn
    async def refund(self, command: TransferMoney) -> int:
        """Compensation: give the sender back what this transfer withdrew."""

        def decide(source: Account, transfer: Transfer) -> None:
            transfer.refund(source)

        return await self._step(command, command.from_account_id, decide)

    @activity.defn
    async def deposit(self, command: TransferMoney) -> int:
        """Credit the amount to the receiver."""

        def decide(destination: Account, transfer: Transfer) -> None:
            transfer.deposit(destination)

        return await self._step(command, command.to_account_id, decide)

    @activity.defn
    async def deposit_and_complete(self, command: TransferMoney) -> int:
        """deposit and complete_transfer in one transaction: once the receiver has the money
        the transfer can only complete, so both go in one save, with the same events."""

        def decide(destination: Account, transfer: Transfer) -> None:
            transfer.deposit(destination)
            transfer.complete()

        return await self._step(command, command.to_account_id, decide)

    @activity.defn
    async def complete_transfer(self, command: TransferMoney) -> int:
        """Record that the transfer went through."""

        def decide(transfer: Transfer) -> None:
            transfer.complete()

        return await self._change(
            command.transfer_id, command.actor, [(Transfer, command.transfer_id)], decide
        )

    @activity.defn
    async def reject_transfer(self, command: RejectTransfer) -> int:
        """Record why the transfer was rejected, after its compensations ran."""

        transfer_command = command.command

        def decide(transfer: Transfer) -> None:
            transfer.request(
                transfer_command.from_account_id,
                transfer_command.to_account_id,
                transfer_command.amount,
            )
            transfer.reject(command.reason, command.error_type, command.details)

        return await self._change(
            transfer_command.transfer_id,
            transfer_command.actor,
            [(Transfer, transfer_command.transfer_id)],
            decide,
        )

    async def _step(
        self, command: TransferMoney, account_id: str, decide: Callable[..., None]
    ) -> int:
        loads: list[Load] = [(Account, account_id), (Transfer, command.transfer_id)]
        return await self._change(command.transfer_id, command.actor, loads, decide)

    async def _change(
        self, transfer_id: str, actor: str, loads: Sequence[Load], decide: Callable[..., None]
    ) -> int:
        """One step's transaction; the global position of its last event (0: nothing owed)."""
        result = await decide_and_save(
            self._repository, transfer_id, actor, loads, decide, TRANSFER_REJECTS, self._attempts
        )
        return result.position
