"""A response's head written together with its body: one socket write for a small answer.

uvicorn writes a response's status line and headers as soon as the app sends
`http.response.start`, then the body when it sends `http.response.body`: two writes, so two
`send` calls and two TCP segments for an answer of a few hundred bytes, each waking the
client. The API answers every request with a Content-Length (Starlette's responses), in one
body message, right after the start. `HeadWithBody` stands for the connection's transport in
one request's cycle and holds the head of such a response back until the body's first bytes
come, then writes both at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

JOINED_BODY_BYTES = 65_536
"""The largest first write of a body that is joined to its head; a larger one is written after
the head, as before, rather than copied."""


class HeadWithBody(asyncio.Transport):
    """One request's view of its connection: the head of a response with a body of known
    length is written with the body's first bytes.

    Only such a head is held: a response without a body (HEAD, 204, 304, a Content-Length of
    0) or with a chunked one is written as uvicorn writes it, and so is anything written
    before the response starts (`100 Continue`). Closing writes a head still held first.
    """

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        super().__init__()
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._head_written = False

    def write(self, data: bytes | bytearray | memoryview[Any]) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if len(data) <= JOINED_BODY_BYTES:
                self._transport.write(head + data)
                return
            self._transport.write(head)
        elif not self._head_written and self._cycle.response_started:
            # uvicorn writes the head right after it marks the response started.
            self._head_written = True
            if self._body_follows():
                self._head = bytes(data)
                return
        self._transport.write(data)

    def close(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head)
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def _body_follows(self) -> bool:
        cycle = self._cycle
        return (
            cycle.chunked_encoding is False
            and cycle.expected_content_length > 0
            and cycle.scope["method"] != "HEAD"
        )
