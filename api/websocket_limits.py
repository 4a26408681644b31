"""Bounds on websockets: how many one customer, and one API token, may hold open at once,
how many may wait for their connection_init at once, and how long a close reason may be.

Each socket costs the API a task, a feed subscription per operation on it and, for a
customer, a session check every few seconds. A customer counts by its user, so all of a
user's sessions share one bound. An API token is a trusted back end that may hold a socket
for each of many customers it acts for: it counts by its fingerprint against a bound of its
own, none unless one is set. The counts are this API process's: with several processes behind
a balancer, a caller may hold that many on each.

A socket names no caller until its connection_init, which it may hold back for the protocol's
wait (10 s): until then it counts against no caller, only against the process's bound on
sockets awaiting their connection_init, so that anyone able to open sockets cannot hold a
process's sockets without a token.
"""

from __future__ import annotations

from collections import Counter

from strawberry.asgi import ASGIWebSocketAdapter

from api.auth import Caller

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
    """The sockets each caller holds open; one over its bound is refused."""

    def __init__(self, per_user: int, per_token: int) -> None:
        self.per_user = per_user
        self.per_token = per_token
        """0: API tokens are not bounded."""
        self._open: Counter[str] = Counter()

    def limit(self, caller: Caller) -> int | None:
        """How many sockets the caller may hold open at once; None for no bound."""
        if caller.customer is not None:
            return self.per_user
        return self.per_token or None

    def open(self, caller: Caller) -> bool:
        """Count one more socket of the caller's, unless it holds its bound already."""
        # One event loop serves the API, so checking and counting cannot interleave.
        limit = self.limit(caller)
        if limit is not None and self._open[caller.name] >= limit:
            return False
        self._open[caller.name] += 1
        return True

    def close(self, caller: Caller) -> None:
        """Count one socket of the caller's less."""
        self._open[caller.name] -= 1
        if self._open[caller.name] <= 0:
            del self._open[caller.name]


class SocketsAwaitingInit:
    """The sockets open on this process whose connection_init was not handled yet."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def enter(self) -> bool:
        """Count one more socket awaiting its connection_init, unless the bound is reached."""
        # One event loop serves the API, so checking and counting cannot interleave.
        if self.count >= self.limit:
            return False
        self.count += 1
        return True

    def leave(self) -> None:
        """Count one socket less: its connection_init was handled, or it closed first."""
        self.count -= 1
