"""A bound on how many queries may wait on `consistentWith` at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from graphql import GraphQLError


class TooManyConsistencyWaits(GraphQLError):
    """Every wait slot is taken: the query is refused at once instead of queueing."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"{limit} queries are already waiting on consistentWith; retry shortly",
            extensions={"code": "TOO_MANY_CONSISTENCY_WAITS", "retryable": True},
        )


class ConsistencyWaits:
    """Slots for waits in progress; each poll of a waiting query costs a database round trip."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.waiting = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot for the duration of one wait, or raise TooManyConsistencyWaits."""
        # One event loop serves the API, so checking and taking the slot cannot interleave.
        if self.waiting >= self.limit:
            raise TooManyConsistencyWaits(self.limit)
        self.waiting += 1
        try:
            yield
        finally:
            self.waiting -= 1
