"""Who is on a websocket: the handshake's bearer token, or the one sent in connection_init.

Browsers cannot set an Authorization header on a websocket, so a socket opened without one
names its token in the graphql-transport-ws `connection_init` payload instead:
`{"Authorization": "Bearer <token>"}` (or `{"token": "<token>"}`). A socket with neither is
closed with 4403 Forbidden before its first operation: the protocol runs nothing before it
has acknowledged the connection.
"""

from __future__ import annotations

import dataclasses

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage

from api.context import Context

FORBIDDEN = 4403


class TokenAtConnectionInit(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws whose connection is acknowledged only for a known caller."""

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        """Name the socket's caller, or close the socket, before the protocol goes on."""
        if not self.connection_init_received and not self.connection_timed_out:
            services = self.context.services
            caller = await services.admit(services.tokens.caller(self.context.request.headers))
            payload = message.get("payload")
            if caller is None and isinstance(payload, dict):
                caller = await services.admit(services.tokens.caller_in_connection_params(payload))
                if caller is not None:
                    self.context = dataclasses.replace(self.context, caller=caller)
            if caller is None:
                await self.websocket.close(code=FORBIDDEN, reason="Forbidden")
                return
        await super().handle_connection_init(message)
