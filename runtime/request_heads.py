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

from runtime.response_writes import HeadWithBody

MAX_HEAD_BYTES = 32_768
"""How large a request's head may grow: the API's own headers (a bearer token, a session,
`traceparent`, `consistentWith`) take well under a kilobyte; common servers stop at 8-32 KiB."""
MAX_HEADERS = 100
"""How many headers a request may carry: each costs the server far more than its few bytes on
the wire, so many tiny ones would hold more memory than the byte bound suggests."""
HEAD_WITHIN_SECONDS = 10.0
"""How long a connection may take to send a request's head: from the moment it opens, or from
the first byte of each further request on it."""

_STATUS_LINES = {
    408: b"HTTP/1.1 408 Request Timeout",
    431: b"HTTP/1.1 431 Request Header Fields Too Large",
}


def bounded_heads_protocol(
    max_bytes: int = MAX_HEAD_BYTES,
    within_seconds: float = HEAD_WITHIN_SECONDS,
    max_headers: int = MAX_HEADERS,
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, refusing a head over `max_bytes` or `max_headers` (431) or
    not complete `within_seconds` (408); either way the connection is then closed, after the
    answers to any earlier requests pipelined on it. Each answer's head is written with its
    body (`HeadWithBody`).

    A connection that opens and sends nothing within the bound is closed without an answer,
    as uvicorn closes an idle kept-alive one. A head's size is its target and each header's
    name and value with ": " and CRLF, counted as the parser hands them over, plus the bytes of
    the header still being read; what one head may hold in memory is `max_bytes` plus one read.
    """

    too_large = f"request headers are larger than {max_bytes} bytes"

    class BoundedHeadsProtocol(HttpToolsProtocol):
        _head_deadline: asyncio.TimerHandle | None = None
        _head_started = False
        _head_bytes = 0
        """The open head's target and whole headers, as the parser has handed them over."""
        _unparsed_bytes = 0
        """Bytes of the open head the parser holds but has not handed over yet: the header
        being read, when reads go by without finishing it."""
        _header_count = 0
        _head_moved = False
        """Whether, in the current read, a head began or one of its headers was handed over."""
        _refusal: tuple[int, str] | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_deadline()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refusal is not None:
                return
            head_was_open = self._head_started
            url_before = len(self.url) if head_was_open else 0
            self._head_moved = False
            super().data_received(data)
            if self._refusal is not None or not self._head_started:
                return
            if head_was_open and not self._head_moved:
                # The whole read went into the open head: the part not in its target is a
                # header the parser is still gathering.
                self._unparsed_bytes += len(data) - (len(self.url) - url_before)
            if self._head_bytes + self._unparsed_bytes > max_bytes:
                self._refuse(431, too_large)

        def on_message_begin(self) -> None:
            if self._refusal is not None:
                return
            super().on_message_begin()
            self._head_started = True
            self._head_moved = True
            self._head_bytes = 0
            self._unparsed_bytes = 0
            self._header_count = 0
            if self._head_deadline is None:
                self._arm_head_deadline()

        def on_url(self, url: bytes) -> None:
            if self._refusal is not None:
                return
            self._head_bytes += len(url)
            if self._head_bytes > max_bytes:
                self._refuse(431, too_large)
                return
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            if self._refusal is not None:
                return
            self._head_moved = True
            self._unparsed_bytes = 0
            self._head_bytes += len(name) + len(value) + 4
            self._header_count += 1
            if self._header_count > max_headers:
                self._refuse(431, f"request has more than {max_headers} headers")
            elif self._head_bytes > max_bytes:
                self._refuse(431, too_large)
            else:
                super().on_header(name, value)

        def on_headers_complete(self) -> None:
            if self._refusal is not None:
                return
            self._head_started = False
            self._disarm_head_deadline()
            earlier = self.cycle
            super().on_headers_complete()
            cycle = self.cycle
            if cycle is not None and cycle is not earlier:
                # The answer's head goes out with its body (runtime/response_writes.py).
                cycle.transport = HeadWithBody(self.transport, cycle)

        def on_body(self, body: bytes) -> None:
            if self._refusal is None:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self._refusal is None:
                super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._refusal is not None:
                if not self._answering():
                    self._send_refusal()
            elif self._head_started and self._head_deadline is not None:
                # Reading again after an earlier answer: what came of this head may have
                # waited unread, so its bound starts afresh.
                self._disarm_head_deadline()
                self._arm_head_deadline()

        def handle_websocket_upgrade(self) -> None:
            if self._refusal is None:
                super().handle_websocket_upgrade()

        def _unsupported_upgrade_warning(self) -> None:
            if self._refusal is None:
                super()._unsupported_upgrade_warning()

        def _arm_head_deadline(self) -> None:
            self._head_deadline = self.loop.call_later(within_seconds, self._head_overdue)

        def _disarm_head_deadline(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None

        def _head_overdue(self) -> None:
            self._head_deadline = None
            if self._head_started and self.flow.read_paused:
                # The server stopped reading (earlier pipelined requests are still being
                # answered): the rest of this head may be waiting, unread, on the socket.
                self._arm_head_deadline()
            elif self._head_started:
                self._refuse(408, "request headers did not arrive in time")
            elif self.cycle is None and not self.transport.is_closing():
                self.transport.close()

        def _answering(self) -> bool:
            """Whether an earlier request on this connection is still being answered."""
            return bool(self.pipeline) or (
                self.cycle is not None and not self.cycle.response_complete
            )

        def _refuse(self, status: int, message: str) -> None:
            """Stop reading; answer `status` once earlier requests are answered, then close."""
            self._refusal = (status, message)
            self._disarm_head_deadline()
            if self.transport.is_closing():
                return
            if self._answering():
                self.transport.pause_reading()
            else:
                self._send_refusal()

        def _send_refusal(self) -> None:
            # Sent at most once: sending closes the transport.
            if self._refusal is None or self.transport.is_closing():
                return
            status, message = self._refusal
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
