"""GraphiQL works offline: the page and everything it loads come from the API itself."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import pytest
import websockets

from tests.e2e.conftest import CLIENT_TOKEN, Stack

BROWSER_READY_WITHIN = 30.0
RENDERED_WITHIN = 60.0
CLICK_ANSWERED_WITHIN = 10.0
RESULT_SHOWN = (
    "(document.querySelector('.result-window') || {}).innerText"
    " && document.querySelector('.result-window').innerText.includes('headPosition')"
    " && document.querySelector('.result-window').innerText"
)
QUERY = "{ systemStatus { headPosition } }"


class Page:
    """One browser tab driven over the DevTools protocol."""

    def __init__(self, socket: websockets.ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)
        self.requested: list[str] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and return its result, noting each request the page makes."""
        call_id = next(self._ids)
        await self._socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self._socket.recv())
            if message.get("method") == "Network.requestWillBeSent":
                self.requested.append(message["params"]["request"]["url"])
            if message.get("id") == call_id:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def wait_for(self, expression: str, within: float) -> Any:
        """Poll until the expression is truthy; fail with what the page shows if it never is."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.25)
        body = await self.evaluate("document.body.innerText")
        pytest.fail(f"{expression} stayed false for {within:g}s; the page shows:\n{body}")

    async def run_query(self, within: float) -> Any:
        """Click GraphiQL's execute button until the result window shows the answer.

        A click while GraphiQL is still setting up (its editors drawn, its schema not yet
        fetched) can be dropped, and the query is a read, so the click is repeated: the bound
        is on the answer, not on the first click landing.
        """
        deadline = time.monotonic() + within
        while True:
            await self.evaluate("document.querySelector('.graphiql-execute-button').click()")
            try:
                return await self.wait_for(
                    RESULT_SHOWN, min(CLICK_ANSWERED_WITHIN, deadline - time.monotonic())
                )
            except pytest.fail.Exception:
                if time.monotonic() >= deadline:
                    raise


@contextlib.asynccontextmanager
async def offline_browser() -> AsyncIterator[Page]:
    """A headless Chromium tab that can resolve no host name: only 127.0.0.1 is reachable."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed: `make test-tools` installs it")
    profile = Path(tempfile.mkdtemp(prefix="sagaline-chromium-"))
    browser = await asyncio.create_subprocess_exec(
        *[
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = await debugging_port(profile, browser)
        async with httpx.AsyncClient() as client:
            targets = (await client.get(f"http://127.0.0.1:{port}/json/list")).json()
        tab = next(t for t in targets if t["type"] == "page")
        async with websockets.connect(tab["webSocketDebuggerUrl"], max_size=None) as socket:
            page = Page(socket)
            await page.call("Network.enable")
            await page.call("Page.enable")
            yield page
    finally:
        browser.terminate()
        try:
            await asyncio.wait_for(browser.wait(), BROWSER_READY_WITHIN)
        except TimeoutError:
            browser.kill()
            await browser.wait()
        shutil.rmtree(profile, ignore_errors=True)


async def debugging_port(profile: Path, browser: asyncio.subprocess.Process) -> int:
    """The DevTools port Chromium picked, from the file it writes once it listens."""
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + BROWSER_READY_WITHIN
    while time.monotonic() < deadline:
        assert browser.returncode is None, f"chromium exited with status {browser.returncode}"
        with contextlib.suppress(OSError, ValueError):
            return int(active.read_text().splitlines()[0])
        await asyncio.sleep(0.1)
    pytest.fail(f"chromium opened no DevTools port within {BROWSER_READY_WITHIN:g}s")


async def test_graphiql_renders_and_runs_a_query_without_the_internet(stack: Stack) -> None:
    headers = json.dumps({"Authorization": f"Bearer {CLIENT_TOKEN}"})
    url = f"{stack.graphql_url}?{urlencode({'q': QUERY, 'headers': headers}, quote_via=quote)}"
    async with offline_browser() as page:
        await page.call("Page.navigate", url=url)
        await page.wait_for(
            "!!document.querySelector('.graphiql-execute-button')"
            " && !!document.querySelector('.graphiql-query-editor .CodeMirror')",
            RENDERED_WITHIN,
        )
        result = await page.run_query(RENDERED_WITHIN)
        requested = list(page.requested)
    assert "errors" not in result, result
    origin = urlsplit(stack.graphql_url).netloc
    elsewhere = [
        u
        for u in requested
        if urlsplit(u).scheme in {"http", "https", "ws", "wss"} and urlsplit(u).netloc != origin
    ]
    assert not elsewhere, f"the page loaded from outside the API: {elsewhere}"
    assert any("/graphiql/graphiql/graphiql.min.js" in u for u in requested), requested
