"""Money amounts: exact decimals with at most two places, positive, bounded."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from domain.errors import InvalidInput

MAX_AMOUNT = Decimal("1000000000000")
CURRENCIES = frozenset({"EUR", "USD", "GBP", "CHF"})
DEFAULT_CURRENCY = "EUR"


def parse_amount(raw: str | Decimal, field: str = "amount") -> Decimal:
    """A positive amount with at most two decimal places, below the ceiling."""
    try:
        amount = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        raise InvalidInput(field, "must be a decimal number such as 12.50") from None
    if not amount.is_finite():
        raise InvalidInput(field, "must be a finite number")
    if amount <= 0:
        raise InvalidInput(field, "must be greater than zero")
    if amount >= MAX_AMOUNT:
        raise InvalidInput(field, f"must be less than {MAX_AMOUNT}")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2 and amount != amount.quantize(Decimal("0.01")):
        raise InvalidInput(field, "must have at most two decimal places")
    return amount.quantize(Decimal("0.01"))


def parse_currency(raw: str | None) -> str:
    """A supported ISO 4217 currency code."""
    currency = (raw or DEFAULT_CURRENCY).strip().upper()
    if currency not in CURRENCIES:
        raise InvalidInput("currency", f"must be one of {', '.join(sorted(CURRENCIES))}")
    return currency
