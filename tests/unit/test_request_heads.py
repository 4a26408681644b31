"""The HTTP server's bounds on a request's head, over real sockets to a uvicorn server."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from runtime.ports import free_port
from runtime.request_heads import bounded_heads_protocol
from tests.waiting import eventually

MAX_HEAD_BYTES = 1024
MAX_HEADERS = 20
WITHIN_SECONDS = 0.5
SLOW_PATH_SECONDS = WITHIN_SECONDS * 2
"""How long the app takes to answer `/slow`: past the head bound, so a pipelined head waits."""
ANSWER_WITHIN = 10.0
"""How long a test waits for an answer: far past the bound, so a slow machine never fails one."""


async def echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers 200 with the length of the body it read (`/slow`: empty, after a pause); accepts
    and closes a websocket."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})
        return
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":  # answers without reading, so a pipelined request waits unread
        await asyncio.sleep(SLOW_PATH_SECONDS)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
        )
        await send({"type": "http.response.body", "body": b""})
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = json.dumps({"received": size}).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    chosen = free_port()
    config = uvicorn.Config(
        echo_length,
        host="127.0.0.1",
        port=chosen,
        log_level="warning",
        lifespan="off",
        http=bounded_heads_protocol(MAX_HEAD_BYTES, WITHIN_SECONDS, MAX_HEADERS),
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await eventually(started, ANSWER_WITHIN, "the server listening")
    yield chosen
    server.should_exit = True
    await asyncio.wait_for(serving, ANSWER_WITHIN)


@pytest.fixture
def server_warnings() -> Iterator[list[logging.LogRecord]]:
    """Warnings and errors the server logs (uvicorn's loggers do not reach the root's)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep(logging.WARNING)
    loggers = [logging.getLogger(name) for name in ("asyncio", "uvicorn.error")]
    for logger in loggers:
        logger.addHandler(keep)
    yield records
    for logger in loggers:
        logger.removeHandler(keep)


async def answers(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), ANSWER_WITHIN)


def padded_request(padding: bytes) -> bytes:
    """A POST whose head carries `padding` in one header."""
    return b"POST / HTTP/1.1\r\nHost: api\r\nX-Padding: %s\r\nContent-Length: 2\r\n\r\n{}" % padding


def request(body: bytes = b"") -> bytes:
    return b"POST / HTTP/1.1\r\nHost: api\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def test_a_head_over_the_limit_is_answered_431_and_the_connection_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: api\r\nX-Padding: ")
    await writer.drain()
    for _ in range(64):  # far past the limit, a read at a time, the header never finished
        if writer.is_closing() or reader.at_eof():
            break
        writer.write(b"a" * 256)
        try:
            await writer.drain()
        except ConnectionError:
            break
    answer = await answers(reader)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    assert b"larger than 1024 bytes" in answer
    writer.close()


async def test_a_head_that_stops_arriving_is_answered_408(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST / HTTP/1.1\r\nHost: api\r\nX-Slow: ")
    await writer.drain()
    answer = await answers(reader)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"did not arrive in time" in answer
    writer.close()


async def test_a_connection_that_never_sends_a_request_is_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await answers(reader) == b""
    writer.close()


async def test_a_body_larger_than_the_head_limit_is_not_counted_as_head(port: int) -> None:
    # Head and body in one write, so the server reads them together.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(b"x" * (MAX_HEAD_BYTES * 64)))
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_WITHIN)
    assert head.startswith(b"HTTP/1.1 200 "), head
    writer.close()


async def test_pipelined_requests_after_a_large_body_are_served(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(b"x" * (MAX_HEAD_BYTES * 64)) + request(b"{}") + request())
    await writer.drain()
    statuses = []
    for _ in range(3):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_WITHIN)
        statuses.append(head.split(b" ")[1])
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await asyncio.wait_for(reader.readexactly(length), ANSWER_WITHIN)
    assert statuses == [b"200", b"200", b"200"]
    writer.close()


async def test_a_kept_alive_connection_idle_past_the_bound_still_serves_its_next_request(
    port: int,
) -> None:
    # The bound is on a head's arrival, not on the quiet between requests (uvicorn's own
    # keep-alive timeout governs that).
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(2):
        writer.write(request(b"{}"))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_WITHIN)
        assert head.startswith(b"HTTP/1.1 200 "), head
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await asyncio.wait_for(reader.readexactly(length), ANSWER_WITHIN)
        await asyncio.sleep(WITHIN_SECONDS * 2)  # the quiet under test, not a wait for a result
    writer.close()


async def test_a_head_sent_in_pieces_within_the_bounds_is_served(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for piece in (b"POST / HTTP/1.1\r\n", b"Host: api\r\n", b"Content-Length: 2\r\n\r\n{}"):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.01)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_WITHIN)
    assert head.startswith(b"HTTP/1.1 200 "), head
    writer.close()


async def test_a_head_over_the_limit_in_one_write_is_answered_431(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    padding = b"a" * (MAX_HEAD_BYTES + 1)
    writer.write(padded_request(padding))
    await writer.drain()
    answer = await answers(reader)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    assert b"received" not in answer  # the app never ran
    writer.close()


async def test_a_head_at_the_limit_is_served(port: int) -> None:
    # A head's size is its target and each header's name and value, with ": " and CRLF.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    fixed = len(b"/") + len(b"host") + len(b"api") + 4 + len(b"content-length") + 1 + 4
    padding = b"a" * (MAX_HEAD_BYTES - fixed - len(b"x-padding") - 4)
    writer.write(padded_request(padding))
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_WITHIN)
    assert head.startswith(b"HTTP/1.1 200 "), head
    writer.close()


async def test_a_websocket_upgrade_over_the_limit_is_answered_431_and_nothing_logged(
    port: int, server_warnings: list[logging.LogRecord]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(websocket_upgrade(b"a" * (MAX_HEAD_BYTES + 1)))
    await writer.drain()
    answer = await answers(reader)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    assert [record.getMessage() for record in server_warnings] == []
    writer.close()


async def test_a_websocket_upgrade_within_the_bounds_reaches_the_app(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(websocket_upgrade(b"a"))
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_WITHIN)
    assert head.startswith(b"HTTP/1.1 101 "), head
    writer.close()


async def test_a_pipelined_head_after_a_body_in_the_same_read_as_an_earlier_head_is_served(
    port: int,
) -> None:
    # Read one: the start of a head. Read two: its end, a body, the start of the next head.
    # Only the last few bytes of read two belong to the open head.
    body = b"x" * (MAX_HEAD_BYTES * 8)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    pieces = (
        b"POST / HTTP/1.1\r\nHost: a",
        b"pi\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body) + b"POST / HTTP/1.1\r\nHost: a",
        b"pi\r\nContent-Length: 0\r\n\r\n",
    )
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.05)  # a separate read for each piece
    assert await statuses(reader, 2) == [b"200", b"200"]
    writer.close()


async def test_a_head_begun_in_one_read_and_finished_in_another_is_counted_whole(
    port: int,
) -> None:
    # The first read carries most of the limit in whole headers, the second passes it.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: api\r\nX-Padding: " + b"a" * (MAX_HEAD_BYTES - 100) + b"\r\n"
    )
    await writer.drain()
    await asyncio.sleep(0.05)  # a separate read
    writer.write(b"X-More: " + b"a" * 200 + b"\r\nX-Last: a")
    await writer.drain()
    answer = await answers(reader)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    writer.close()


async def test_more_headers_than_the_limit_are_answered_431(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    headers = b"".join(b"x-%d: a\r\n" % n for n in range(MAX_HEADERS))  # and Host: one over
    writer.write(b"GET / HTTP/1.1\r\nHost: api\r\n" + headers + b"\r\n")
    await writer.drain()
    answer = await answers(reader)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    assert b"more than 20 headers" in answer
    writer.close()


async def test_as_many_headers_as_the_limit_are_served(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    headers = b"".join(b"x-%d: a\r\n" % n for n in range(MAX_HEADERS - 1))
    writer.write(b"GET / HTTP/1.1\r\nHost: api\r\n" + headers + b"\r\n")
    await writer.drain()
    assert await statuses(reader, 1) == [b"200"]
    writer.close()


async def test_a_pipelined_head_over_the_limit_is_refused_after_the_answer_before_it(
    port: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    oversized = b"GET / HTTP/1.1\r\nHost: api\r\nX-Padding: %s\r\n\r\n" % (b"a" * MAX_HEAD_BYTES)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: api\r\n\r\n" + oversized)
    await writer.drain()
    assert await statuses(reader, 2) == [b"200", b"431"]
    assert await answers(reader) == b""
    writer.close()


async def test_a_pipelined_head_overdue_is_refused_after_the_answer_before_it(port: int) -> None:
    # The 408 falls due while `/slow` is being answered: it waits for that answer to finish.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: api\r\n\r\nGET / HTTP/1.1\r\nHost: a")
    await writer.drain()
    assert await statuses(reader, 2) == [b"200", b"408"]
    writer.close()


def websocket_upgrade(padding: bytes) -> bytes:
    return (
        b"GET / HTTP/1.1\r\nHost: api\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"X-Padding: %s\r\n\r\n" % padding
    )


async def statuses(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    """The status codes of the next `count` answers, each read through its body."""
    found = []
    for _ in range(count):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_WITHIN)
        found.append(head.split(b" ")[1])
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await asyncio.wait_for(reader.readexactly(length), ANSWER_WITHIN)
    return found


async def test_a_pipelined_head_the_server_has_not_read_yet_is_not_overdue(port: int) -> None:
    # The second request waits behind `/slow`, so the server stops reading: the end of the
    # third head, sent at once, stays unread past the bound until `/slow` is answered.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: api\r\n\r\n" + request() + b"POST / HTTP/1.1\r\nHo")
    await writer.drain()
    await asyncio.sleep(0.05)  # a separate read
    writer.write(b"st: api\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    assert await statuses(reader, 3) == [b"200", b"200", b"200"]
    writer.close()
