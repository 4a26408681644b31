"""What the API checks about a request before GraphQL sees it: the size of its body."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BODY_SCOPE_KEY = "sagaline.body"
"""Where BodyLimit leaves the body it read whole, for the app not to read it a second time."""


class BodyLimit:
    """Answers 413 to an HTTP request whose body is larger than `max_bytes`, before parsing.

    A declared Content-Length is checked up front; a chunked or under-declared body is
    counted as it arrives. The body is read whole before the app runs (GraphQL parses it
    whole anyway), so a refusal never comes after the app has started answering. The body
    is then both in the scope (BODY_SCOPE_KEY) and replayed to the app's first `receive`.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        scope[BODY_SCOPE_KEY] = body
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self._app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = JSONResponse(
            {"errors": [{"message": f"request body is larger than {self._max_bytes} bytes"}]},
            status_code=413,
            headers={"Connection": "close"},
        )
        await refusal(scope, receive, send)
