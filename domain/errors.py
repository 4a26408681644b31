"""The root of every business rejection."""

from __future__ import annotations


class DomainError(Exception):
    """A command the business rules reject; the message is safe to show a client."""

    code: str | None = None
    """The name clients know this rejection by; the class name unless set."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def error_code(self) -> str:
        """The name clients know this rejection by."""
        return self.code or type(self).__name__


class InvalidInput(DomainError):
    """A command field that breaks its format or range rule."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ConcurrencyConflict(DomainError):
    """The caller's expected version is no longer the aggregate's version."""

    def __init__(self, aggregate_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"{aggregate_id} is at version {actual}, not the expected version {expected}"
        )
        self.expected = expected
        self.actual = actual
