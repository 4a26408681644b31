"""What the API's HTTP server bounds about a request's head (its request line and headers),
which arrive before any ASGI app can see them.

uvicorn's httptools parser buffers a head however long it grows and however slowly it comes:
one connection sending a header of endless bytes grows the process without limit, and
connections dribbling a byte at a time are held for ever (slow loris). The body is bounded
in the app (api/edge.py); the head is bounded here, in the protocol that parses it.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 32_768
"""How large a request's head may grow: the API's own headers (a bearer token, a session,
`traceparent`, `consistentWith`) take well under a kilobyte; common servers stop at 8-32 KiB."""
HEAD_WITHIN_SECONDS = 10.0
"""How long a connection may take to send a request's head: from the moment it opens, or from
the first byte of each further request on it."""

_STATUS_LINES = {
    408: b"HTTP/1.1 408 Request Timeout",
    431: b"HTTP/1.1 431 Request Header Fields Too Large",
}


def bounded_heads_protocol(
    max_bytes: int = MAX_HEAD_BYTES, within_seconds: float = HEAD_WITHIN_SECONDS
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, refusing a head over `max_bytes` (431) or not complete
    `within_seconds` (408); either way the connection is then closed.

    A connection that opens and sends nothing within the bound is closed without an answer,
    as uvicorn closes an idle kept-alive one. A head still arriving is counted read by read,
    so what one may hold in memory is `max_bytes` plus one read; a complete one is measured
    by its parts before the app sees it.
    """

    class BoundedHeadsProtocol(HttpToolsProtocol):
        _head_deadline: asyncio.TimerHandle | None = None
        _head_started = False
        _head_bytes = 0
        _refused = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_deadline()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            head_was_open = self._head_started
            super().data_received(data)
            # A read that began inside a head and did not finish it is head bytes throughout.
            # A read in which a head began is not counted: its start may be an earlier body's end.
            if head_was_open and self._head_started:
                self._head_bytes += len(data)
                if self._head_bytes > max_bytes:
                    self._refuse(431, f"request headers are larger than {max_bytes} bytes")

        def on_message_begin(self) -> None:
            if self._refused:
                return
            super().on_message_begin()
            self._head_started = True
            self._head_bytes = 0
            if self._head_deadline is None:
                self._arm_head_deadline()

        def on_headers_complete(self) -> None:
            if self._refused:
                return
            self._head_started = False
            self._disarm_head_deadline()
            # A head that came in one read was not counted as it arrived: its parts are.
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > max_bytes:
                self._refuse(431, f"request headers are larger than {max_bytes} bytes")
                return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if not self._refused:
                super().on_message_complete()

        def _arm_head_deadline(self) -> None:
            self._head_deadline = self.loop.call_later(within_seconds, self._head_overdue)

        def _disarm_head_deadline(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None

        def _head_overdue(self) -> None:
            self._head_deadline = None
            if self._head_started:
                self._refuse(408, "request headers did not arrive in time")
            elif self.cycle is None and not self.transport.is_closing():
                self.transport.close()

        def _refuse(self, status: int, message: str) -> None:
            self._refused = True
            self._disarm_head_deadline()
            if self.transport.is_closing():
                return
            body = f'{{"errors":[{{"message":"{message}"}}]}}'.encode()
            head = [
                _STATUS_LINES[status],
                b"content-type: application/json",
                b"content-length: " + str(len(body)).encode(),
                b"connection: close",
            ]
            self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
            self.transport.close()

    return BoundedHeadsProtocol
