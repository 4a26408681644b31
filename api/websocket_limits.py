"""Bounds on websockets: how many one caller may hold open at once, and how long a close
reason may be.

Each socket costs the API a task, a feed subscription per operation on it and, for a
customer, a session check every few seconds. A caller counts by its name: an API token by
its fingerprint, a customer by its user, so all of a user's sessions share one bound.
"""

from __future__ import annotations

from collections import Counter

from strawberry.asgi import ASGIWebSocketAdapter

MAX_CLOSE_REASON_BYTES = 123
"""A close frame holds at most 125 bytes, two of them the code (RFC 6455, 5.5)."""


def close_reason(reason: str) -> str:
    """The reason cut to what a close frame holds, as UTF-8 (a lone surrogate replaced)."""
    encoded = reason.encode("utf-8", "replace")
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return encoded.decode()
    return encoded[: MAX_CLOSE_REASON_BYTES - 3].decode("utf-8", "ignore") + "..."


class BoundedCloseReasons(ASGIWebSocketAdapter):
    """Strawberry's websocket, closing with a reason that fits the frame.

    The protocol closes with a reason that can echo the client's text (an unknown operation
    name, a syntax error's token); one too long for the frame made the server drop the
    connection with a protocol error instead of closing it with its code.
    """

    async def close(self, code: int, reason: str) -> None:
        await super().close(code, close_reason(reason))


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
