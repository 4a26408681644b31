"""A response's head leaves with its body in one write when the body's length is known; every
other answer is written as uvicorn writes it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from runtime.response_writes import JOINED_BODY_BYTES, HeadWithBody


class RecordedTransport(asyncio.Transport):
    """What was written, write by write, and whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def cycle_on(transport: RecordedTransport, method: str = "POST") -> RequestResponseCycle:
    scope: Any = {"type": "http", "method": method, "path": "/", "http_version": "1.1"}
    cycle = RequestResponseCycle(
        scope=scope,
        transport=transport,
        flow=FlowControl(transport),
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=True,
        on_response=lambda: None,
    )
    cycle.transport = HeadWithBody(transport, cycle)
    return cycle


def start(*headers: tuple[bytes, bytes], status: int = 200) -> Any:
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


def body(data: bytes, more: bool = False) -> Any:
    return {"type": "http.response.body", "body": data, "more_body": more}


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"


async def test_a_head_and_a_body_of_known_length_are_one_write() -> None:
    transport = RecordedTransport()
    cycle = cycle_on(transport)
    await cycle.send(start((b"content-length", b"5")))
    assert transport.writes == []
    await cycle.send(body(b"hello"))
    assert transport.writes == [HEAD + b"hello"]
    assert cycle.response_complete


async def test_a_body_in_parts_has_its_head_with_the_first() -> None:
    transport = RecordedTransport()
    cycle = cycle_on(transport)
    await cycle.send(start((b"content-length", b"5")))
    await cycle.send(body(b"he", more=True))
    await cycle.send(body(b"llo"))
    assert transport.writes == [HEAD + b"he", b"llo"]


async def test_a_large_first_part_is_written_after_its_head() -> None:
    transport = RecordedTransport()
    cycle = cycle_on(transport)
    size = JOINED_BODY_BYTES + 1
    await cycle.send(start((b"content-length", str(size).encode())))
    await cycle.send(body(b"x" * size))
    assert len(transport.writes) == 2
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[1] == b"x" * size


async def test_answers_without_a_known_body_are_written_at_once() -> None:
    for method, headers in [
        ("HEAD", [(b"content-length", b"5")]),
        ("POST", [(b"content-length", b"0")]),
        ("POST", []),  # chunked
    ]:
        transport = RecordedTransport()
        cycle = cycle_on(transport, method)
        await cycle.send(start(*headers))
        assert len(transport.writes) == 1, (method, headers)
        assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")


async def test_a_continue_before_the_answer_is_written_at_once() -> None:
    transport = RecordedTransport()
    cycle = cycle_on(transport)
    cycle.waiting_for_100_continue = True
    cycle.response_complete = True  # receive answers at once instead of waiting for a body
    await cycle.receive()
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]


async def test_closing_writes_a_held_head_first() -> None:
    transport = RecordedTransport()
    cycle = cycle_on(transport)
    await cycle.send(start((b"content-length", b"5")))
    cycle.transport.close()
    assert transport.writes == [HEAD]
    assert transport.closed
