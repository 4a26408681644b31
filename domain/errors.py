"""The root of every business rejection."""

from __future__ import annotations


class DomainError(Exception):
    """A command the business rules reject; the message is safe to show a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    """A command field that breaks its format or range rule."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
