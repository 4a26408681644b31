"""Every business rejection, by the code clients and retry policies know it by."""

from __future__ import annotations

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
from domain.transfers import NotTheTransfersAccount, SameAccountTransfer, TransferNotFound
from domain.users import EmailAlreadyInUse, UserAlreadyExists, UserLockedError, UserNotFound

REJECTIONS: tuple[type[DomainError], ...] = (
    InvalidInput,
    ConcurrencyConflict,
    AccountNotFound,
    AccountAlreadyExists,
    AccountClosedError,
    InsufficientFunds,
    DailyLimitExceeded,
    BalanceNotZero,
    BalanceCeilingExceeded,
    CurrencyMismatch,
    EmailAlreadyInUse,
    UserNotFound,
    UserAlreadyExists,
    UserLockedError,
    SameAccountTransfer,
    NotTheTransfersAccount,
    TransferNotFound,
)

REJECTION_CODES: tuple[str, ...] = tuple(rejection.code for rejection in REJECTIONS)
"""The failure types of business rejections: final answers, never retried."""
