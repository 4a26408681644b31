"""Which GraphQL errors are logged how: a client's mistake is not an operator's error.

A request that fails to parse or validate, carries bad variables, or is refused by a
resolver with a typed error (BAD_USER_INPUT, FORBIDDEN, ...) is logged at INFO, in one line
without a traceback. An unexpected exception (a bug) is logged at ERROR with its traceback
and the correlation id its client is answered with. An outage is reported by api/outages.py,
at most every few seconds per component.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.types import ExecutionContext

from adapters.outages import unavailable_service

log = logging.getLogger(__name__)

ECHOED_VALUE = re.compile(r"((?:[Ff]ound|cannot represent[^:]*): ).*", re.DOTALL)
"""Where graphql-core's message on a refused input quotes the value it was given (a
password among them), to the end of the message."""
NOT_LOGGED = "<value not logged>"
MAX_LOGGED_MESSAGE = 500
"""The most of a refusal's message logged: it may quote the document (a field name of the
body's whole size), and a client's mistake is worth a line, not a megabyte."""

CORRELATION_ID = "correlationId"
"""The extension under which an unexpected error's correlation id travels to the masking."""


class LoggedSchema(strawberry.Schema):
    """Strawberry's schema logging its errors by `log_errors`, not all at ERROR."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_errors(errors)


def log_errors(errors: Sequence[GraphQLError]) -> None:
    """Log each error of an operation at the level its cause calls for."""
    for error in errors:
        if is_client_error(error):
            log.info("request refused%s: %s", _where(error), without_values(error.message))
        elif unavailable_service(error.original_error) is None:
            report_unexpected(error)


def without_values(message: str) -> str:
    """A refusal's message as logged: what it quotes of the request's input left out, since
    that may be a secret, and cut to MAX_LOGGED_MESSAGE (the caller is still answered the
    whole message)."""
    message = ECHOED_VALUE.sub(rf"\1{NOT_LOGGED}", message, count=1)
    if len(message) <= MAX_LOGGED_MESSAGE:
        return message
    return f"{message[:MAX_LOGGED_MESSAGE]}... ({len(message)} characters)"


def is_client_error(error: GraphQLError) -> bool:
    """Whether the request caused the error: before execution (no path), or typed by a resolver."""
    return (
        error.path is None
        or error.original_error is None
        or isinstance(error.original_error, GraphQLError)
    )


def report_unexpected(error: GraphQLError) -> str:
    """Log an unexpected error once, at ERROR with its traceback; its correlation id."""
    known = error.extensions.get(CORRELATION_ID) if error.extensions else None
    if isinstance(known, str):
        return known
    correlation_id = str(uuid.uuid4())
    log.error(
        "unexpected error %s at %s",
        correlation_id,
        ".".join(map(str, error.path or ())),
        exc_info=error.original_error or error,
    )
    error.extensions = {**(error.extensions or {}), CORRELATION_ID: correlation_id}
    return correlation_id


def _where(error: GraphQLError) -> str:
    extensions: dict[str, Any] = error.extensions or {}
    code = extensions.get("code")
    path = ".".join(map(str, error.path or ()))
    return "".join(part for part in (f" ({code})" if code else "", f" at {path}" if path else ""))
