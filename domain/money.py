"""Money: exact decimals with at most two places, bounded, and balances under a ceiling."""

from __future__ import annotations

import re
from decimal import Decimal

from domain.errors import InvalidInput

MAX_DECIMAL = Decimal("1000000000.00")
"""The largest magnitude a decimal from a client may have."""
MAX_BALANCE = Decimal("1000000000.00")
"""No account may hold more than this."""
CURRENCIES = frozenset({"EUR", "USD", "GBP", "CHF"})
DEFAULT_CURRENCY = "EUR"
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]{1,2})?")
_MAX_DECIMAL_CHARACTERS = 20
DECIMAL_FORMAT = (
    'a string of ASCII digits with an optional leading "-" and at most two decimals, '
    f'such as "12.50", of magnitude at most {MAX_DECIMAL}'
)


def parse_decimal(text: str, field: str) -> Decimal:
    """The decimal a client wrote: ASCII digits, optional leading minus, two places at most."""
    if len(text) > _MAX_DECIMAL_CHARACTERS or not _DECIMAL.fullmatch(text):
        raise InvalidInput(field, f"must be {DECIMAL_FORMAT}")
    value = Decimal(text)
    if abs(value) > MAX_DECIMAL:
        raise InvalidInput(field, f"must be at most {MAX_DECIMAL} in magnitude")
    return value.quantize(Decimal("0.01"))


def check_amount(amount: Decimal, field: str = "amount") -> Decimal:
    """An amount of money to move: greater than zero."""
    if amount <= 0:
        raise InvalidInput(field, "must be greater than zero")
    return amount


def parse_currency(raw: str | None) -> str:
    """A supported ISO 4217 currency code."""
    currency = (raw or DEFAULT_CURRENCY).strip().upper()
    if currency not in CURRENCIES:
        raise InvalidInput("currency", f"must be one of {', '.join(sorted(CURRENCIES))}")
    return currency
