"""A bound on how many websockets one caller may hold open at once.

Each socket costs the API a task, a feed subscription per operation on it and, for a
customer, a session check every few seconds. A caller counts by its name: an API token by
its fingerprint, a customer by its user, so all of a user's sessions share one bound.
"""

from __future__ import annotations

from collections import Counter


class SocketsPerCaller:
    """The sockets each caller holds open; one over the limit is refused."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def open(self, caller: str) -> bool:
        """Count one more socket of the caller's, unless it holds `limit` already."""
        # One event loop serves the API, so checking and counting cannot interleave.
        if self._open[caller] >= self.limit:
            return False
        self._open[caller] += 1
        return True

    def close(self, caller: str) -> None:
        """Count one socket of the caller's less."""
        self._open[caller] -= 1
        if self._open[caller] <= 0:
            del self._open[caller]
