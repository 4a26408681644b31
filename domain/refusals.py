"""Why an account's rule refused, as facts: which rule, which account, which figures.

A refusal's text is made from its facts, never the other way round, so a reader who may not
see that account's figures (another customer's balance, limit or holdings) is shown the same
text with each figure hidden, and nothing has to be read back out of a sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from enum import StrEnum

HIDDEN_AMOUNT = "(hidden)"


class RefusalKind(StrEnum):
    """The rules that refuse with an account's figures; each is its error's code."""

    INSUFFICIENT_FUNDS = "InsufficientFunds"
    DAILY_LIMIT_EXCEEDED = "DailyLimitExceeded"
    BALANCE_NOT_ZERO = "BalanceNotZero"
    BALANCE_CEILING_EXCEEDED = "BalanceCeilingExceeded"


_TEXTS = {
    RefusalKind.INSUFFICIENT_FUNDS: "account {account_id} has {balance}, cannot withdraw {amount}",
    RefusalKind.DAILY_LIMIT_EXCEEDED: (
        "account {account_id} may send {remaining} more today, not {amount}"
    ),
    RefusalKind.BALANCE_NOT_ZERO: "account {account_id} still holds {balance}",
    RefusalKind.BALANCE_CEILING_EXCEEDED: (
        "account {account_id} holds {balance}; with {amount} more it would pass the ceiling of "
        "{ceiling}"
    ),
}


@dataclass(frozen=True)
class Refusal:
    """One account's rule said no; the figures it names are that account's."""

    kind: RefusalKind
    account_id: str
    balance: Decimal | None = None
    amount: Decimal | None = None
    remaining: Decimal | None = None
    ceiling: Decimal | None = None

    def text(self, amounts_hidden: bool = False) -> str:
        """The refusal as a sentence; with `amounts_hidden`, every figure reads (hidden)."""
        return _TEXTS[self.kind].format(**self.facts(amounts_hidden))

    def facts(self, amounts_hidden: bool = False) -> dict[str, str]:
        """The refusal as strings, to travel and be kept (Temporal, event data, JSON)."""
        facts = {"kind": self.kind.value, "account_id": self.account_id}
        for name in _AMOUNTS:
            value = getattr(self, name)
            if value is not None:
                facts[name] = HIDDEN_AMOUNT if amounts_hidden else str(value)
        return facts

    @classmethod
    def from_facts(cls, facts: Mapping[str, object] | None) -> Refusal | None:
        """The refusal `facts()` wrote; None for anything else (no facts, another kind)."""
        if not facts:
            return None
        kind, account_id = facts.get("kind"), facts.get("account_id")
        if kind not in _KINDS or not isinstance(account_id, str):
            return None
        amounts: dict[str, Decimal] = {}
        for name in _AMOUNTS:
            value = facts.get(name)
            if value is None:
                continue
            try:
                amounts[name] = Decimal(str(value))
            except InvalidOperation:
                return None
        refusal = cls(RefusalKind(kind), account_id, **amounts)
        try:
            refusal.text()
        except KeyError:
            return None  # a figure its kind names is missing
        return refusal


_KINDS = frozenset(kind.value for kind in RefusalKind)
_AMOUNTS = tuple(f.name for f in fields(Refusal) if f.name not in ("kind", "account_id"))
