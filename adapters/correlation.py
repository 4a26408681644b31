"""What a log line says of the command it is about: its correlation id and its workflow id.

The API and the activities set them for the code they run; the JSON log format reads them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_correlation_id: ContextVar[str | None] = ContextVar("sagaline_correlation_id", default=None)
_workflow_id: ContextVar[str | None] = ContextVar("sagaline_workflow_id", default=None)


@contextmanager
def correlated(correlation_id: str, workflow_id: str | None = None) -> Iterator[None]:
    """Within the block, log lines name this correlation id (and workflow id, if given)."""
    correlation = _correlation_id.set(correlation_id)
    workflow = _workflow_id.set(workflow_id) if workflow_id is not None else None
    try:
        yield
    finally:
        if workflow is not None:
            _workflow_id.reset(workflow)
        _correlation_id.reset(correlation)


def correlation_id() -> str | None:
    """The correlation id of the command being handled here, if any."""
    return _correlation_id.get()


def workflow_id() -> str | None:
    """The workflow id the API is waiting on here, if any."""
    return _workflow_id.get()
