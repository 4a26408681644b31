"""The bank workload: accounts opened with the same balance, then random transfers from
concurrent clients, a few of them refused on purpose, each one's outcome as its client saw it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.chaos.clients import Api, Unanswered

REGISTER = """
mutation($in: RegisterUserInput!) {
  registerUser(input: $in) { __typename ... on UserRegistered { user { id } } }
}"""
OPEN = """
mutation($in: OpenAccountInput!) {
  openAccount(input: $in) { __typename ... on AccountOpened { account { id } } }
}"""
DEPOSIT = """
mutation($in: DepositMoneyInput!) {
  depositMoney(input: $in) { __typename ... on MoneyDeposited { account { balance } } }
}"""
TRANSFER = """
mutation($in: TransferMoneyInput!) {
  transferMoney(input: $in) {
    __typename
    ... on TransferCompleted { transfer { status } }
    ... on TransferRejected { reason transfer { status } }
  }
}"""
AUTHENTICATE = """
mutation($in: AuthenticateInput!) { authenticate(input: $in) { __typename } }"""
USER_STATUS = "query($id: ID!) { user(id: $id) { status } }"
BALANCE = "query($id: ID!) { account(id: $id) { balance } }"

OPENING_BALANCE = Decimal("1000.00")
OVERDRAFT = Decimal("2500.00")
"""More than any account holds: the random walk of small transfers stays far below it."""
TRANSFER_WITHIN = 600.0
"""Bound of one transfer, retries included: longer than every fault of the schedule."""
SETUP_WITHIN = 300.0
# What each answer means for the transfer's record.
OUTCOMES = {
    "TransferCompleted": "COMPLETED",
    "TransferRejected": "REJECTED",
    "InsufficientFunds": "REJECTED",
    # A transfer to an account that does not exist is refused before it records anything.
    "AccountNotFound": "REFUSED",
}


@dataclass
class TransferAttempt:
    """One transfer a client sent and what it saw in the end."""

    transfer_id: str
    from_account: str
    to_account: str
    amount: Decimal
    intent: str
    """`ordinary`, or why it is meant to be refused: `overdraft`, `missing-account`."""
    started: float
    finished: float | None = None
    outcome: str | None = None
    """COMPLETED, REJECTED, REFUSED (nothing recorded), or what went wrong instead."""
    requests: int = 0

    @property
    def latency(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


class Pacer:
    """Hands out transfer numbers at a steady rate until `release`, then as fast as asked.

    `total` is a minimum: until `release` the numbers go on at that rate past it, so work
    keeps flowing through every fault however long the faults take (each fault waits for a
    transfer to finish after it); after `release` none is handed out past it."""

    def __init__(self, total: int, per_second: float) -> None:
        self.total = total
        self.per_second = per_second
        self._issued = 0
        self._started = time.monotonic()
        self._released = asyncio.Event()

    def release(self) -> None:
        self._released.set()

    @property
    def issued(self) -> int:
        return self._issued

    async def next(self) -> int | None:
        if self._issued >= self.total and self._released.is_set():
            return None
        number = self._issued
        self._issued += 1
        due = self._started + number / self.per_second
        wait = due - time.monotonic()
        if wait > 0 and not self._released.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), wait)
        return number


async def open_accounts(api: Api, run: str, count: int, parallel: int = 8) -> list[str]:
    """`count` accounts, each of its own customer, each holding the opening balance."""
    slots = asyncio.Semaphore(parallel)

    async def one(n: int) -> str:
        async with slots:
            return await _open_account(api, run, n)

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def _open_account(api: Api, run: str, n: int) -> str:
    user = await _must(
        api,
        REGISTER,
        {
            "email": f"chaos-{run}-{n}@example.com",
            "name": f"Customer {n}",
            "password": "chaos-password",
            "commandId": f"{run}-register-{n}",
        },
        "registerUser",
        "UserRegistered",
        n,
    )
    opened = await _must(
        api,
        OPEN,
        {"ownerId": user["user"]["id"], "commandId": f"{run}-open-{n}"},
        "openAccount",
        "AccountOpened",
        n,
    )
    account_id: str = opened["account"]["id"]
    await _must(
        api,
        DEPOSIT,
        {"accountId": account_id, "amount": str(OPENING_BALANCE), "commandId": f"{run}-fund-{n}"},
        "depositMoney",
        "MoneyDeposited",
        n,
    )
    return account_id


async def _must(
    api: Api, query: str, values: dict[str, object], field: str, expected: str, n: int
) -> dict[str, Any]:
    payload, _ = await api.until_final(query, {"in": values}, field, n, SETUP_WITHIN)
    if payload["__typename"] != expected:
        raise RuntimeError(f"setting up the bank, {field} answered {payload}")
    return payload


class TransferClients:
    """`clients` concurrent customers of the bank sending random transfers between accounts."""

    def __init__(
        self,
        api: Api,
        run: str,
        accounts: list[str],
        pacer: Pacer,
        *,
        clients: int,
        refusals: float,
        seed: int,
    ) -> None:
        self.api = api
        self.run = run
        self.accounts = accounts
        self.pacer = pacer
        self.clients = clients
        self.refusals = refusals
        self.random = random.Random(seed)
        self.attempts: list[TransferAttempt] = []

    @property
    def finished(self) -> int:
        return sum(1 for attempt in self.attempts if attempt.finished is not None)

    async def run_all(self) -> None:
        await asyncio.gather(*(self._client(n) for n in range(self.clients)))

    async def _client(self, n: int) -> None:
        while (number := await self.pacer.next()) is not None:
            attempt = self._draw(number)
            self.attempts.append(attempt)
            variables = {
                "in": {
                    "fromAccountId": attempt.from_account,
                    "toAccountId": attempt.to_account,
                    "amount": str(attempt.amount),
                    "transferId": attempt.transfer_id,
                }
            }
            try:
                payload, attempt.requests = await self.api.until_final(
                    TRANSFER, variables, "transferMoney", n, TRANSFER_WITHIN
                )
            except Unanswered as error:
                attempt.outcome = f"UNFINISHED ({error})"
                continue
            attempt.finished = time.monotonic()
            kind = str(payload["__typename"])
            attempt.outcome = OUTCOMES.get(kind, f"UNEXPECTED {kind}")

    def _draw(self, number: int) -> TransferAttempt:
        source, destination = self.random.sample(self.accounts, 2)
        amount = Decimal(self.random.randint(100, 4000)) / 100
        intent = "ordinary"
        if self.random.random() < self.refusals:
            if self.random.random() < 2 / 3:
                intent, amount = "overdraft", OVERDRAFT
            else:
                intent, destination = "missing-account", str(uuid.uuid4())
        return TransferAttempt(
            f"{self.run}-transfer-{number}",
            source,
            destination,
            amount,
            intent,
            time.monotonic(),
        )


async def locks_after_failed_logins(api: Api, run: str, within: float) -> float | None:
    """Seconds until three failed logins of a fresh customer lock it, None if not `within`."""
    email = f"chaos-{run}-cep@example.com"
    user = await _must(
        api,
        REGISTER,
        {
            "email": email,
            "name": "Mallory",
            "password": "right-password",
            "commandId": f"{run}-cep",
        },
        "registerUser",
        "UserRegistered",
        0,
    )
    user_id = user["user"]["id"]
    started = time.monotonic()
    for _ in range(3):
        await api.until_final(
            AUTHENTICATE,
            {"in": {"email": email, "password": "wrong-password"}},
            "authenticate",
            0,
            SETUP_WITHIN,
        )
    deadline = started + within
    while time.monotonic() < deadline:
        data = await api.read(USER_STATUS, {"id": user_id})
        if (data.get("user") or {}).get("status") == "LOCKED":
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    return None
