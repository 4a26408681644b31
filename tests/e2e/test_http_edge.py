"""The HTTP edge of the running API: body size, selection cost, `consistentWith` as a header
and its bound, GraphQL over HTTP's media type (checked by the graphql-http audit)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from runtime.launcher import PROJECT_ROOT
from tests.e2e.conftest import CLIENT_TOKEN, Stack

AUTH = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
MAX_BODY_BYTES = 1_048_576  # SAGALINE_API_MAX_BODY_BYTES's default
MAX_CONSISTENCY_WAITS = 8  # SAGALINE_API_MAX_CONSISTENCY_WAITS's default
PAST_HEAD = "999999999999"  # far past any head these tests reach
GRAPHQL_HTTP = PROJECT_ROOT / "build" / "test-tools" / "node_modules"
AUDIT_SCRIPT = Path(__file__).with_name("graphql_http_audit.cjs")
AUDIT_WITHIN = 120


def oversized_body() -> bytes:
    """A well-formed GraphQL request just over the body limit."""
    padding = "x" * MAX_BODY_BYTES
    return json.dumps({"query": "{ __typename }", "variables": {"padding": padding}}).encode()


def post(stack: Stack, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        stack.graphql_url,
        json=body,
        headers={**AUTH, **(headers or {})},
        timeout=30,
    )


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in body.get("errors") or []]


def test_a_body_over_the_limit_is_refused_with_413(stack: Stack) -> None:
    response = httpx.post(
        stack.graphql_url,
        content=oversized_body(),
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413, response.text
    assert "larger than" in response.json()["errors"][0]["message"]


def test_a_chunked_body_over_the_limit_is_refused_with_413(stack: Stack) -> None:
    body = oversized_body()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    # A generator body has no Content-Length: httpx sends it chunked.
    response = httpx.post(
        stack.graphql_url,
        content=chunks(),
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=30,
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text


def test_a_body_under_the_limit_is_answered(stack: Stack) -> None:
    padding = "x" * (MAX_BODY_BYTES // 2)
    response = post(stack, {"query": "{ __typename }", "variables": {"padding": padding}})
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"__typename": "Query"}


def test_headers_over_the_limit_are_refused_with_431_before_the_app(stack: Stack) -> None:
    # The API's server bounds a request's head (runtime/request_heads.py): 32 KiB.
    response = httpx.post(
        stack.graphql_url,
        json={"query": "{ __typename }"},
        headers={**AUTH, "X-Padding": "a" * 40_000},
        timeout=30,
    )
    assert response.status_code == 431, response.text
    assert "headers are larger than" in response.json()["errors"][0]["message"]
    assert post(stack, {"query": "{ __typename }"}).status_code == 200


def test_a_query_selecting_too_many_fields_is_refused(stack: Stack) -> None:
    repeated = "{" + " systemStatus { headPosition }" * 300 + "}"
    aliased = "{" + "".join(f" s{i}: systemStatus {{ headPosition }}" for i in range(300)) + "}"
    for query in (repeated, aliased):
        body = stack.graphql(query)
        assert body.get("data") is None, body
        assert error_codes(body) == ["QUERY_TOO_COSTLY"], body


def test_consistent_with_is_accepted_as_a_header(stack: Stack) -> None:
    head = stack.data("{ systemStatus { headPosition } }")["systemStatus"]["headPosition"]
    query = {"query": "{ systemStatus { headPosition } }"}

    reached = post(stack, query, {"Consistent-With": head}).json()
    assert not reached.get("errors"), reached

    past_head = post(stack, query, {"Consistent-With": PAST_HEAD}).json()
    assert error_codes(past_head) == ["BAD_USER_INPUT"], past_head

    malformed = post(stack, query, {"Consistent-With": "not-a-position"}).json()
    assert error_codes(malformed) == ["BAD_USER_INPUT"], malformed


async def test_positions_past_the_head_are_refused_at_once_holding_no_wait_slot(
    stack: Stack,
) -> None:
    past_head = {"query": f'{{ systemStatus(consistentWith: "{PAST_HEAD}") {{ headPosition }} }}'}
    plain = {"query": "{ systemStatus { headPosition } }"}
    async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
        waits = [
            client.post(stack.graphql_url, json=past_head) for _ in range(4 * MAX_CONSISTENCY_WAITS)
        ]
        answers = await asyncio.gather(*waits, client.post(stack.graphql_url, json=plain))
    *refused, plain_answer = [answer.json() for answer in answers]
    # None of them waits, so none takes a slot from the others (with four times the slots
    # sent at once, waiting ones would find them all taken). Waits up to the head, and the
    # slots they hold, are tested against the store in tests/integration.
    assert [error_codes(answer) for answer in refused] == [["BAD_USER_INPUT"]] * len(refused)
    assert not plain_answer.get("errors"), plain_answer


def test_graphql_response_media_type_answers_400_to_a_request_error(stack: Stack) -> None:
    accept = {"Accept": "application/graphql-response+json"}
    invalid = post(stack, {"query": "{ noSuchField }"}, accept)
    assert invalid.status_code == 400, invalid.text
    assert invalid.headers["content-type"].startswith("application/graphql-response+json")
    assert "data" not in invalid.json()

    legacy = post(stack, {"query": "{ noSuchField }"}, {"Accept": "application/json"})
    assert legacy.status_code == 200, legacy.text
    assert legacy.headers["content-type"].startswith("application/json")


def test_a_subscription_sent_over_http_is_a_request_error_not_an_internal_one(
    stack: Stack,
) -> None:
    subscription = {"query": 'subscription { eventAppended(streamId: "x") { type } }'}
    accept = {"Accept": "application/graphql-response+json"}
    refused = post(stack, subscription, accept)
    assert refused.status_code == 400, refused.text
    assert error_codes(refused.json()) == ["BAD_REQUEST"], refused.text
    assert "websocket" in refused.json()["errors"][0]["message"]
    legacy = post(stack, subscription)
    assert legacy.status_code == 200, legacy.text
    assert error_codes(legacy.json()) == ["BAD_REQUEST"], legacy.text


def test_graphql_over_http_audit_finds_no_error_or_warning(stack: Stack) -> None:
    assert GRAPHQL_HTTP.is_dir(), "graphql-http is not installed: `make test-tools` installs it"
    audit = subprocess.run(
        ["node", str(AUDIT_SCRIPT), stack.graphql_url, CLIENT_TOKEN],
        env={**os.environ, "NODE_PATH": str(GRAPHQL_HTTP)},
        capture_output=True,
        text=True,
        timeout=AUDIT_WITHIN,
        check=True,
    )
    results = json.loads(audit.stdout)
    assert len(results) > 40, results
    failing = [r for r in results if r["status"] in {"error", "warn"}]
    assert not failing, json.dumps(failing, indent=2)
