"""Who is on a websocket: the handshake's bearer token, or the one sent in connection_init.

Browsers cannot set an Authorization header on a websocket, so a socket opened without one
names its token in the graphql-transport-ws `connection_init` payload instead:
`{"Authorization": "Bearer <token>"}` (or `{"token": "<token>"}`). A socket with neither is
closed with 4403 Forbidden before its first operation: the protocol runs nothing before it
has acknowledged the connection. So is one whose payload names a caller other than its
header's: a socket has one caller, and two credentials that disagree name no one.

A customer session is checked for as long as its socket is open, not just when it opens:
before every message with data and at least every SESSION_CHECK_SECONDS. Once the session
has expired the socket is closed with 4401 Unauthorized; once it is revoked (its user locked
since it was issued) with 4403 Forbidden. Nothing more is sent on it either way.

A customer whose user holds SAGALINE_API_MAX_WEBSOCKETS_PER_USER sockets already (an API
token: SAGALINE_API_MAX_WEBSOCKETS_PER_TOKEN, if set) has one more closed with 4429 (too
many) at its connection_init, before it is acknowledged. A socket opened while
SAGALINE_API_MAX_WEBSOCKETS_AWAITING_INIT others still await their connection_init is closed
with 1013 (try again later) at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from datetime import UTC, datetime

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
)

from api.auth import Caller, credentials_in_connection_params
from api.context import Context
from api.request_shapes import malformed_message

log = logging.getLogger(__name__)

UNAUTHORIZED = 4401
FORBIDDEN = 4403
TOO_MANY_SOCKETS = 4429
TRY_AGAIN_LATER = 1013
"""RFC 6455's code for a server that cannot take the connection now (IANA registry)."""
SESSION_CHECK_SECONDS = 2.0


class TokenAtConnectionInit(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws whose connection is acknowledged only for a known caller, and
    closed as soon as a customer's session ends."""

    _session_watch: asyncio.Task[None] | None = None
    _session_ended = False
    _counted_as: Caller | None = None
    """The caller whose open sockets count this one (from its connection_init on)."""
    _awaiting_init = False
    """Whether this socket counts among those awaiting their connection_init."""

    async def handle(self) -> None:
        """Take the socket, unless too many others still await their connection_init."""
        if not self.context.services.sockets_awaiting_init.enter():
            reason = "too many websockets awaiting connection_init; try again later"
            await self.websocket.close(code=TRY_AGAIN_LATER, reason=reason)
            return
        self._awaiting_init = True
        await super().handle()

    def _init_handled(self) -> None:
        if self._awaiting_init:
            self._awaiting_init = False
            self.context.services.sockets_awaiting_init.leave()

    async def handle_message(self, message: Message) -> None:
        """Close with 4400 on a message not of its type's shape (api/request_shapes.py),
        which strawberry would fail on with an internal error."""
        problem = malformed_message(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        """Name the socket's caller, or close the socket, before the protocol goes on."""
        self._init_handled()
        if not self.connection_init_received and not self.connection_timed_out:
            services = self.context.services
            caller = await services.admit(services.tokens.caller(self.context.request.headers))
            payload = message.get("payload")
            if isinstance(payload, dict) and credentials_in_connection_params(payload):
                # A credential in the payload besides the handshake's must name the same
                # caller: two that disagree name no one, as two in the payload do.
                named = await services.admit(services.tokens.caller_in_connection_params(payload))
                if named is None or (caller is not None and named != caller):
                    caller = None
                else:
                    caller = named
                    self.context = dataclasses.replace(self.context, caller=caller)
            if caller is None:
                await self.websocket.close(code=FORBIDDEN, reason="Forbidden")
                return
            sockets = services.sockets_per_caller
            if not sockets.open(caller):
                limit = sockets.limit(caller)
                reason = f"too many websockets open for this caller (at most {limit})"
                await self.websocket.close(code=TOO_MANY_SOCKETS, reason=reason)
                return
            self._counted_as = caller
        await super().handle_connection_init(message)
        customer = self.context.caller.customer is not None
        if self.connection_acknowledged and customer and self._session_watch is None:
            self._session_watch = asyncio.create_task(self._watch_session())

    async def send_message(self, message: Message) -> None:
        """Send, unless the socket's session has ended: data goes out only while it holds."""
        if self._session_ended:
            return
        if message["type"] == "next" and not await self._session_holds():
            return
        await super().send_message(message)

    async def shutdown(self) -> None:
        self._init_handled()
        if self._counted_as is not None:
            self.context.services.sockets_per_caller.close(self._counted_as)
            self._counted_as = None
        if self._session_watch is not None:
            self._session_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._session_watch
        await super().shutdown()

    async def _session_holds(self) -> bool:
        """Whether the caller's session still holds; if not, the socket is closed."""
        caller = self.context.caller
        if caller.customer is None:
            return True
        if self._session_ended:
            return False
        if caller.expires_at is not None and caller.expires_at <= datetime.now(UTC):
            code, reason = UNAUTHORIZED, "session expired"
        elif await self.context.services.admit(caller) is None:
            code, reason = FORBIDDEN, "session revoked"
        else:
            return True
        self._session_ended = True
        await self.websocket.close(code=code, reason=reason)
        return False

    async def _watch_session(self) -> None:
        """Check the session every few seconds (and at its expiry) until it ends."""
        while True:
            try:
                if not await self._session_holds():
                    return
            except Exception:
                # The read model is out of reach: no data goes out meanwhile (every message
                # checks too), and the next check tries again.
                log.warning("could not check a websocket's session", exc_info=True)
            wait = SESSION_CHECK_SECONDS
            expires_at = self.context.caller.expires_at
            if expires_at is not None:
                remaining = (expires_at - datetime.now(UTC)).total_seconds()
                wait = min(wait, max(remaining, 0.0) + 0.01)
            await asyncio.sleep(wait)
