"""The root of every business rejection."""

from __future__ import annotations

from typing import Any, ClassVar

from domain.refusals import Refusal


class DomainError(Exception):
    """A command the business rules reject; the message is safe to show a client."""

    code: ClassVar[str] = "DomainError"
    """The name clients and retry policies know this rejection by: the class name unless set."""
    details: dict[str, str]
    """The ids and fields a client's answer names, as strings (they travel through Temporal)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.code = cls.__dict__.get("code", cls.__name__)

    refusal: Refusal | None = None
    """Why, as facts, for a rule that refuses with an account's figures (domain/refusals.py)."""

    step: str | None = None
    """The saga step that refused, set by an activity that runs several steps in one
    transaction (activities/transfers.py), so that its workflow knows which one it was."""

    def __init__(self, message: str, **details: str) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def refused(self, refusal: Refusal) -> None:
        """Be the error of this refusal: its text the message, its facts the details."""
        DomainError.__init__(self, refusal.text(), **refusal.facts())
        self.refusal = refusal


class InvalidInput(DomainError):
    """A command field that breaks its format or range rule."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)
        self.field = field


class ConcurrencyConflict(DomainError):
    """The caller's expected version is no longer the aggregate's version."""

    def __init__(self, aggregate_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"{aggregate_id} is at version {actual}, not the expected version {expected}",
            aggregate_id=aggregate_id,
        )
