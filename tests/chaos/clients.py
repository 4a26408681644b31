"""GraphQL clients as a careful application writes them: every mutation carries its id, and
a network error, a 503, `SERVICE_UNAVAILABLE` or a pending answer is retried with that id.

Every answer a client sees is tallied, so the summary can say how often each kind came back;
an `INTERNAL_SERVER_ERROR` (a masked error) is kept with its time and message.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRYABLE_CODES = frozenset(
    {"SERVICE_UNAVAILABLE", "TOO_MANY_CONSISTENCY_WAITS", "CONSISTENCY_TIMEOUT"}
)
PENDING = frozenset({"CommandPending", "TransferPending"})
MASKED = "INTERNAL_SERVER_ERROR"
REQUEST_TIMEOUT = 30.0
FIRST_BACKOFF = 0.2
MAX_BACKOFF = 2.0


@dataclass(frozen=True)
class MaskedError:
    """An internal error a client was shown: when (seconds into the run) and what."""

    at: float
    message: str


@dataclass
class Tally:
    """What the clients saw, by kind of answer."""

    started: float = field(default_factory=time.monotonic)
    answers: Counter[str] = field(default_factory=Counter)
    masked: list[MaskedError] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def saw(self, kind: str) -> None:
        self.answers[kind] += 1


class Unanswered(Exception):
    """No final answer within the bound; the last thing seen is the message."""


class Api:
    """Requests to any of the deployment's APIs, spread and failed over between them."""

    def __init__(self, urls: list[str], token: str, tally: Tally) -> None:
        self.urls = urls
        self.tally = tally
        self._http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def once(self, query: str, variables: dict[str, Any], api: int) -> dict[str, Any] | str:
        """The `data` of one request, or the kind of retryable answer it got instead.

        Masked and other unexpected errors are tallied, and count as retryable: the request
        carries its id, so sending it again is safe.
        """
        url = self.urls[api % len(self.urls)]
        try:
            response = await self._http.post(url, json={"query": query, "variables": variables})
        except httpx.HTTPError:
            return "network error"
        if response.status_code == 503:
            return "http 503"
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            self.tally.unexpected.append(f"HTTP {response.status_code}: {response.text[:200]}")
            return "unexpected"
        errors = body.get("errors") or []
        if response.status_code >= 500 and not errors:
            self.tally.unexpected.append(f"HTTP {response.status_code}: {response.text[:200]}")
            return "unexpected"
        for error in errors:
            code = (error.get("extensions") or {}).get("code")
            if code == MASKED:
                at = time.monotonic() - self.tally.started
                self.tally.masked.append(MaskedError(at, str(error.get("message"))))
                return "masked"
            if code in RETRYABLE_CODES:
                return str(code)
        if errors:
            self.tally.unexpected.append(str(errors)[:300])
            return "unexpected"
        data: dict[str, Any] = body["data"]
        return data

    async def until_final(
        self, query: str, variables: dict[str, Any], field_name: str, api: int, within: float
    ) -> tuple[dict[str, Any], int]:
        """The field's payload once it is no longer pending, and the requests it took."""
        deadline = time.monotonic() + within
        backoff = FIRST_BACKOFF
        attempts = 0
        last = "nothing"
        while time.monotonic() < deadline:
            attempts += 1
            answer = await self.once(query, variables, api)
            if isinstance(answer, dict):
                payload: dict[str, Any] = answer[field_name]
                kind = str(payload.get("__typename"))
                if kind not in PENDING:
                    self.tally.saw(kind)
                    return payload, attempts
                self.tally.saw(kind)
                last = kind
            else:
                self.tally.saw(answer)
                last = answer
                if answer == "network error":
                    api += 1  # as a load balancer would: try the other API
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
        raise Unanswered(f"{field_name} still {last} after {within:.0f}s and {attempts} requests")

    async def read(
        self, query: str, variables: dict[str, Any], within: float = 60.0
    ) -> dict[str, Any]:
        """The data of a query, retried over outages."""
        deadline = time.monotonic() + within
        api = 0
        while time.monotonic() < deadline:
            answer = await self.once(query, variables, api)
            if isinstance(answer, dict):
                return answer
            api += 1
            await asyncio.sleep(FIRST_BACKOFF)
        raise Unanswered(f"no answer to a query within {within:.0f}s")
