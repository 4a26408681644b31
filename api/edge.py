"""What the API checks about a request before GraphQL sees it: the size of its body, and
how long it takes to arrive."""

from __future__ import annotations

import asyncio

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BODY_SCOPE_KEY = "sagaline.body"
"""Where BodyLimit leaves the body it read whole, for the app not to read it a second time."""
BODY_WITHIN_SECONDS = 10.0
"""How long a request's body may take to arrive once its headers have: a megabyte takes
well under a second on any link a client uses; a body still arriving after this is a client
holding the connection (slow loris), answered 408 and let go of."""


class BodyLimit:
    """Answers 413 to an HTTP request whose body is larger than `max_bytes`, before parsing.

    A declared Content-Length is checked up front; a chunked or under-declared body is
    counted as it arrives. The body is read whole before the app runs (GraphQL parses it
    whole anyway), so a refusal never comes after the app has started answering. The body
    is then both in the scope (BODY_SCOPE_KEY) and replayed to the app's first `receive`.
    A body not all there within `within_seconds` is answered 408.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, within_seconds: float = BODY_WITHIN_SECONDS
    ) -> None:
        self._app = app
        self._max_bytes = max_bytes
        self._within_seconds = within_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            await self._refuse(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self._within_seconds):
                body = await self._body(receive)
        except TimeoutError:
            await self._answer(scope, receive, send, 408, "request body did not arrive in time")
            return
        if body is None:
            return
        if len(body) > self._max_bytes:
            await self._refuse(scope, receive, send)
            return
        scope[BODY_SCOPE_KEY] = body
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self._app(scope, replay, send)

    async def _body(self, receive: Receive) -> bytes | None:
        """The whole body, or as much of it as passes the limit; None if the client left."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            if size > self._max_bytes or not message.get("more_body", False):
                return b"".join(chunks)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body is larger than {self._max_bytes} bytes"
        await self._answer(scope, receive, send, 413, message)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, status: int, message: str
    ) -> None:
        refusal = JSONResponse(
            {"errors": [{"message": message}]}, status_code=status, headers={"Connection": "close"}
        )
        await refusal(scope, receive, send)
