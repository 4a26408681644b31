"""The HTTP edge in process: body limit, CORS, selection cost, the media type, the wait bound,
GraphiQL's page pointing at local assets."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any, cast

import httpx2
import pytest
from graphql import get_introspection_query, parse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect
from strawberry.http.ides import get_graphql_ide_html
from strawberry.types.execution import PreExecutionError

from api.app import SagalineGraphQL, TokenGuard, accepts_graphql_response, create_app
from api.auth import AMBIGUOUS_CREDENTIAL, Caller, Role, TokenCheck, parse_tokens
from api.consistency_waits import ConsistencyWaits, TooManyConsistencyWaits
from api.context import Services
from api.edge import BodyLimit
from api.graphiql import GraphiQLPage, npm_specs, page_assets
from api.request_shapes import NOT_A_REQUEST, NOT_AN_OPERATION_NAME
from api.safety import MAX_ANSWER_COST, MAX_SELECTION_COST, selection_cost
from api.schema import build_schema
from api.websocket_limits import SocketsPerCaller, close_reason
from runtime.config import ConfigurationError, Settings

ORIGIN = "https://app.example.com"
UNPARSED = "Unable to parse request body as JSON"


def echo_app(max_bytes: int) -> TestClient:
    async def echo(request: Request) -> Response:
        return JSONResponse({"received": len(await request.body())})

    return TestClient(BodyLimit(Starlette(routes=[Route("/", echo, methods=["POST"])]), max_bytes))


def test_body_limit_refuses_a_declared_length_over_it() -> None:
    response = echo_app(100).post("/", content=b"x" * 101)
    assert response.status_code == 413


def test_body_limit_counts_a_chunked_body_as_it_arrives() -> None:
    def chunks() -> Any:
        yield from (b"x" * 40 for _ in range(3))

    response = echo_app(100).post("/", content=chunks())
    assert response.status_code == 413


def test_body_limit_passes_a_body_at_the_limit_through_whole() -> None:
    response = echo_app(100).post("/", content=b"x" * 100)
    assert response.status_code == 200
    assert response.json() == {"received": 100}


async def test_body_limit_answers_408_to_a_body_that_stops_arriving() -> None:
    # A client that sends its headers and part of its body, then dribbles or stalls (slow
    # loris), is answered and let go of, not waited on for as long as it keeps the socket.
    messages = [{"type": "http.request", "body": b'{"query":', "more_body": True}]
    sent: list[Message] = []

    async def receive() -> Message:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the app must not run without the whole body")

    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    started = time.monotonic()
    await asyncio.wait_for(BodyLimit(app, 100, within_seconds=0.2)(scope, receive, send), 5)
    assert time.monotonic() - started < 2
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]


def test_selection_cost_counts_fields_and_fragments_where_spread() -> None:
    document = parse(
        "query { a: systemStatus { ...S } b: systemStatus { ...S } }"
        " fragment S on SystemStatus { headPosition relays { name } }"
    )
    assert selection_cost(document) == 2 + 2 * 3


def test_selection_cost_survives_cycles_and_unknown_fragments() -> None:
    document = parse("{ x { ...A ...Missing } } fragment A on X { y ...A }")
    assert selection_cost(document) == 2


NESTED_ACCOUNTS = '{ user(id: "u") { accounts { owner { accounts { id } } } } }'
"""A user's accounts, each with its owner's accounts again: a customer may open any number
of accounts, so the answer grows with the square of that number."""


def test_the_answer_cost_counts_a_connection_page_and_an_unpaged_list_per_item() -> None:
    schema = build_schema()._schema
    page = 'query($n: Int) { events(streamId: "s", first: $n) { edges { node { type } } } }'
    # events, edges, then node and type once per item of the page.
    assert selection_cost(parse(page), schema, {"n": 50}) == 2 + 50 * 2
    assert selection_cost(parse(page), schema, {"n": 500}) == 2 + 100 * 2  # capped
    assert selection_cost(parse(page), schema, {}) == 2 + 20 * 2  # the default page
    literal = (
        '{ events(streamId: "s", first: 7) { edges { node { type } } pageInfo { endCursor } } }'
    )
    assert selection_cost(parse(literal), schema) == 2 + 7 * 2 + 2
    # A list without pages counts as the largest page; nesting multiplies.
    assert selection_cost(parse('{ user(id: "u") { accounts { id } } }'), schema) == 2 + 100
    assert selection_cost(parse(NESTED_ACCOUNTS), schema) == 2 + 100 * (2 + 100)
    # Without the schema it is the count of fields selected, as the field limit reads it.
    assert selection_cost(parse(NESTED_ACCOUNTS)) == 5


def test_the_operations_clients_send_stay_within_both_limits() -> None:
    schema = build_schema()._schema
    ordinary = [
        get_introspection_query(descriptions=True),  # GraphiQL's
        """query($id: ID!) { events(streamId: $id, first: 100) {
             edges { cursor node { position streamId version type data metadata recordedAt } }
             pageInfo { hasNextPage endCursor } } }""",
        """query($user: ID!, $account: ID!) { user(id: $user) { id accounts { id } }
             account(id: $account) { balance } users { edges { node { id } } }
             transfers { edges { node { id } } }
             history: events(streamId: $user) { edges { node { type } } } }""",
        "{ users { edges { node { id email accounts { id balance currency status } } } } }",
        "{ systemStatus { headPosition projections { name position lag } relay { lag } } }",
    ]
    for query in ordinary:
        document = parse(query)
        assert selection_cost(document) <= MAX_SELECTION_COST, query
        assert selection_cost(document, schema, {"id": "s"}) <= MAX_ANSWER_COST, query


async def test_nested_lists_are_too_costly_and_a_page_variable_counts_per_request() -> None:
    schema = build_schema()
    nested = await schema.execute(NESTED_ACCOUNTS)
    assert nested.errors is not None
    assert [e.extensions for e in nested.errors] == [{"code": "QUERY_TOO_COSTLY"}]
    # The same text is checked again with each request's variables, not kept by text.
    paged = (
        "query($n: Int) { users(first: $n) { edges { node { accounts { id owner { id } } } } } }"
    )
    checked = build_schema(max_answer_cost=1_000)
    # A value that is no page size (refused when coerced) counts as the largest page.
    for n, refused in ((2, False), (50, True), (2, False), ([2], True), ("2", True)):
        answer = await checked.execute(paged, {"n": n})
        codes = [(e.extensions or {}).get("code") for e in answer.errors or []]
        assert ("QUERY_TOO_COSTLY" in codes) is refused, (n, answer.errors)


async def test_a_subscription_selecting_nested_lists_is_refused_too() -> None:
    follow = (
        'subscription { transferUpdated(id: "t") { fromAccount { owner { accounts'
        " { owner { accounts { id } } } } } } }"
    )
    answer = await build_schema().subscribe(follow)
    if not isinstance(answer, PreExecutionError):
        answer = await anext(answer)  # strawberry may answer a refusal as the stream's one item
    assert [e.extensions for e in answer.errors or []] == [{"code": "QUERY_TOO_COSTLY"}]


async def test_a_document_over_the_cost_is_refused_before_validation() -> None:
    schema = build_schema(max_selection_cost=10)
    over = await schema.execute("{" + " systemStatus { headPosition }" * 6 + "}")
    assert over.errors is not None
    assert [e.extensions for e in over.errors] == [{"code": "QUERY_TOO_COSTLY"}]
    within = await schema.execute("{ __typename }")
    assert within.errors is None


TOO_LONG_INTEGER = "1" + "0" * 5_000
"""More digits than Python converts to an int (sys.get_int_max_str_digits)."""


@pytest.mark.parametrize(
    "query",
    [
        f"{{ users(first: {TOO_LONG_INTEGER}) {{ edges {{ cursor }} }} }}",
        f"query ($f: Int = {TOO_LONG_INTEGER}) {{ users(first: $f) {{ edges {{ cursor }} }} }}",
        f'mutation {{ depositMoney(input: {{accountId: "a", amount: {TOO_LONG_INTEGER}}})'
        " { __typename } }",
        f"{{ user(id: {TOO_LONG_INTEGER}) {{ id }} }}",
    ],
)
async def test_an_integer_literal_too_long_to_convert_is_bad_input_not_internal(
    query: str,
) -> None:
    answer = await build_schema().execute(query)
    assert answer.errors is not None
    assert [e.extensions for e in answer.errors] == [{"code": "BAD_USER_INPUT"}]
    assert "digits" in answer.errors[0].message
    assert TOO_LONG_INTEGER not in answer.errors[0].message


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/graphql-response+json", True),
        ("application/json, application/graphql-response+json;q=0.9", True),
        ("application/graphql-response+json;q=0", False),
        ("application/json", False),
        ("", False),
    ],
)
def test_graphql_response_is_chosen_when_the_client_accepts_it(accept: str, expected: bool) -> None:
    assert accepts_graphql_response(accept) is expected


async def test_wait_slots_refuse_one_more_than_the_bound_and_free_on_exit() -> None:
    waits = ConsistencyWaits(limit=2)
    with waits.slot(), waits.slot():
        with pytest.raises(TooManyConsistencyWaits), waits.slot():
            pass
        assert waits.waiting == 2
    assert waits.waiting == 0
    with waits.slot():
        assert waits.waiting == 1


def test_cors_origins_are_parsed_and_checked() -> None:
    assert Settings(api_cors_origins=f" {ORIGIN}/ , http://localhost:3000").cors_origins() == [
        ORIGIN,
        "http://localhost:3000",
    ]
    assert Settings().cors_origins() == []
    with pytest.raises(ConfigurationError):
        Settings(api_cors_origins="app.example.com").cors_origins()


def test_cors_preflight_and_refusals_carry_the_allowed_origin() -> None:
    client = TestClient(create_app(Settings(api_cors_origins=ORIGIN)))
    preflight = client.options(
        "/graphql",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, consistent-with",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "consistent-with" in preflight.headers["access-control-allow-headers"].lower()
    # Not started, so no token is valid: the 401 still tells the browser it may read it.
    refused = client.post("/graphql", json={"query": "{ __typename }"}, headers={"Origin": ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    other = client.options(
        "/graphql",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in other.headers


def test_no_cors_headers_without_configured_origins() -> None:
    client = TestClient(create_app(Settings()))
    response = client.post("/graphql", json={"query": "{ __typename }"}, headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers


def services_without_backends(settings: Settings) -> Services:
    """Services knowing the client token `t`, with nothing behind them to connect to."""
    return Services(
        settings=settings,
        engine=cast(Any, None),
        temporal=cast(Any, None),
        tokens=TokenCheck(parse_tokens("t:client")),
        feed=cast(Any, None),
        reads=cast(Any, None),
        primary_reads=cast(Any, None),
    )


def websocket_client(settings: Settings) -> TestClient:
    view = SagalineGraphQL({"services": services_without_backends(settings)}, settings)
    return TestClient(view)


def test_a_request_with_two_authorization_headers_is_refused_as_ambiguous() -> None:
    settings = Settings()
    state = {"services": services_without_backends(settings)}
    client = TestClient(TokenGuard(SagalineGraphQL(state, settings), state))
    query = {"query": "{ __typename }"}
    one = client.post("/", json=query, headers={"Authorization": "Bearer t"})
    assert one.status_code == 200 and one.json()["data"] == {"__typename": "Query"}
    two = httpx2.Headers([("Authorization", "Bearer t"), ("Authorization", "Bearer t")])
    refused = client.post("/", json=query, headers=two)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.json() == {"errors": [{"message": AMBIGUOUS_CREDENTIAL}]}
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/", subprotocols=["graphql-transport-ws"], headers=two),
    ):
        pass
    assert closed.value.code == 4401 and closed.value.reason == AMBIGUOUS_CREDENTIAL


def test_two_operations_without_an_operation_name_answer_400_with_the_reason() -> None:
    client = websocket_client(Settings())
    two = {"query": "query A { __typename } query B { __typename }"}
    accept = {"Accept": "application/graphql-response+json"}
    refused = client.post("/", json=two, headers=accept)
    assert refused.status_code == 400
    message = "Must provide operation name if query contains multiple operations."
    assert refused.json() == {"errors": [{"message": message}]}
    named = client.post("/", json={**two, "operationName": "B"}, headers=accept)
    assert named.status_code == 200 and named.json() == {"data": {"__typename": "Query"}}


def test_websockets_from_a_listed_origin_are_accepted_and_others_refused() -> None:
    client = websocket_client(Settings(api_cors_origins=ORIGIN))
    with client.websocket_connect(
        "/", subprotocols=["graphql-transport-ws"], headers={"Origin": ORIGIN}
    ) as socket:
        socket.send_json({"type": "connection_init", "payload": {"Authorization": "Bearer t"}})
        assert socket.receive_json()["type"] == "connection_ack"
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect(
            "/", subprotocols=["graphql-transport-ws"], headers={"Origin": "https://evil.example"}
        ),
    ):
        pass


def test_a_token_over_its_websocket_bound_is_closed_with_4429_until_one_closes() -> None:
    client = websocket_client(Settings(api_max_websockets_per_token=2))
    init = {"type": "connection_init", "payload": {"Authorization": "Bearer t"}}
    protocol = ["graphql-transport-ws"]
    with client.websocket_connect("/", subprotocols=protocol) as first:
        first.send_json(init)
        assert first.receive_json()["type"] == "connection_ack"
        with client.websocket_connect("/", subprotocols=protocol) as second:
            second.send_json(init)
            assert second.receive_json()["type"] == "connection_ack"
            with client.websocket_connect("/", subprotocols=protocol) as third:
                third.send_json(init)
                with pytest.raises(WebSocketDisconnect) as closed:
                    third.receive_json()
            assert closed.value.code == 4429
            assert closed.value.reason == "too many websockets open for this caller (at most 2)"
        # The second socket closed, so its place is free again.
        with client.websocket_connect("/", subprotocols=protocol) as again:
            again.send_json(init)
            assert again.receive_json()["type"] == "connection_ack"


def test_sockets_awaiting_connection_init_past_the_bound_are_closed_with_1013() -> None:
    settings = Settings(api_max_websockets_awaiting_init=2)
    services = services_without_backends(settings)
    client = TestClient(SagalineGraphQL({"services": services}, settings))
    awaiting = services.sockets_awaiting_init
    protocol = ["graphql-transport-ws"]
    init = {"type": "connection_init", "payload": {"Authorization": "Bearer t"}}

    def awaiting_reaches(count: int) -> None:
        deadline = time.monotonic() + 5
        while awaiting.count != count:
            assert time.monotonic() < deadline, f"{awaiting.count} awaiting, not {count}"
            time.sleep(0.01)

    with client.websocket_connect("/", subprotocols=protocol) as first:
        with client.websocket_connect("/", subprotocols=protocol):
            awaiting_reaches(2)
            with (
                client.websocket_connect("/", subprotocols=protocol) as third,
                pytest.raises(WebSocketDisconnect) as closed,
            ):
                third.receive_json()
            assert closed.value.code == 1013
            assert closed.value.reason.startswith("too many websockets awaiting connection_init")
            # A socket past its connection_init, or closed, awaits nothing any more.
            first.send_json(init)
            assert first.receive_json()["type"] == "connection_ack"
            awaiting_reaches(1)
            with client.websocket_connect("/", subprotocols=protocol) as another:
                another.send_json(init)
                assert another.receive_json()["type"] == "connection_ack"
        awaiting_reaches(0)


@pytest.mark.parametrize(
    ("payload", "acknowledged"),
    [
        ({"Authorization": "Bearer t"}, True),
        ({"token": "t"}, True),
        ({}, True),
        ({"token": "o"}, False),
        ({"Authorization": "Bearer o"}, False),
        ({"token": "not-a-token"}, False),
    ],
)
def test_a_connection_init_credential_besides_the_header_must_name_the_same_caller(
    payload: dict[str, str], acknowledged: bool
) -> None:
    settings = Settings()
    services = dataclasses.replace(
        services_without_backends(settings), tokens=TokenCheck(parse_tokens("t:client,o:operator"))
    )
    client = TestClient(SagalineGraphQL({"services": services}, settings))
    header = {"Authorization": "Bearer t"}
    with client.websocket_connect("/", subprotocols=["graphql-transport-ws"], headers=header) as ws:
        ws.send_json({"type": "connection_init", "payload": payload})
        if acknowledged:
            assert ws.receive_json()["type"] == "connection_ack"
        else:
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 4403


def test_a_customers_sessions_share_one_websocket_bound_and_a_token_has_none() -> None:
    sockets = SocketsPerCaller(per_user=2, per_token=0)
    sessions = [Caller(Role.CUSTOMER, "customer:u1", "u1") for _ in range(3)]
    assert sockets.open(sessions[0]) and sockets.open(sessions[1])
    assert not sockets.open(sessions[2])
    assert sockets.open(Caller(Role.CUSTOMER, "customer:u2", "u2"))
    back_end = Caller(Role.CLIENT, "client:0123456789ab")
    assert all(sockets.open(back_end) for _ in range(1000))
    sockets.close(sessions[0])
    assert sockets.open(sessions[2])


def test_graphiql_page_loads_every_asset_from_the_api(tmp_path: Any) -> None:
    template = get_graphql_ide_html("graphiql")
    assets = page_assets(template)
    assert {"react", "react-dom", "graphiql"} <= {asset.package for asset in assets}
    page = GraphiQLPage(tmp_path)
    assert "https://" not in page.html
    for asset in assets:
        assert f'"/graphiql/{asset.path}"' in page.html
    assert page.missing() == npm_specs(assets)
    assert page.render().status_code == 503


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'"a string"', NOT_A_REQUEST),
        (b"null", NOT_A_REQUEST),
        (b"12", NOT_A_REQUEST),
        (b'{"query": "{ __typename }"}\xff', "Unable to parse request body as JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "Unable to parse request body as JSON"),
        # More digits than Python converts to an int (sys.get_int_max_str_digits).
        (b'{"query": "{ __typename }", "variables": {"n": 1' + b"0" * 5_000 + b"}}", UNPARSED),
        (b'{"query": "{ __typename }", "variables": {"n": -' + b"9" * 5_000 + b"}}", UNPARSED),
        (
            b'{"query": "query A { __typename }", "operationName": "\\ud800"}',
            NOT_AN_OPERATION_NAME,
        ),
        (b'{"query": "query A { __typename }", "operationName": 3}', NOT_AN_OPERATION_NAME),
    ],
)
def test_a_body_that_is_not_a_graphql_request_answers_400_not_500(body: bytes, reason: str) -> None:
    client = websocket_client(Settings())
    response = client.post("/", content=body, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.text) == (400, reason)


INIT = {"type": "connection_init", "payload": {"Authorization": "Bearer t"}}


def closed_after(client: TestClient, *messages: str) -> tuple[int, str]:
    """The code and reason a socket is closed with after the messages, sent after its init."""
    with client.websocket_connect("/", subprotocols=["graphql-transport-ws"]) as socket:
        socket.send_json(INIT)
        assert socket.receive_json()["type"] == "connection_ack"
        for message in messages:
            socket.send_text(message)
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
    return closed.value.code, closed.value.reason


SUBSCRIPTION = 'subscription S { eventAppended(streamId: "x") { type } }'
LONE_SURROGATE = "<lone surrogate>"


def message(**fields: Any) -> str:
    """A message's JSON text; LONE_SURROGATE in it stands for a lone surrogate's escape."""
    return json.dumps(fields).replace(LONE_SURROGATE, "\\ud800")


def subscribe(operation_id: object = "1", **payload: Any) -> str:
    return message(type="subscribe", id=operation_id, payload={"query": SUBSCRIPTION, **payload})


@pytest.mark.parametrize(
    "text",
    [
        "null",
        "[1, 2]",
        "[" * 100_000 + "]" * 100_000,
        '{"type": "ping", "payload": {"n": 1' + "0" * 5_000 + "}}",
        message(type=1),
        subscribe(1),
        subscribe("x" * 100),
        subscribe(LONE_SURROGATE),
        message(type="subscribe", id="1", payload="x"),
        message(type="subscribe", id="1", payload={"query": 5}),
        subscribe(variables="x"),
        subscribe(operationName=LONE_SURROGATE),
        message(type="complete", id=7),
    ],
)
def test_a_websocket_message_not_of_the_protocols_shape_closes_the_socket_with_4400(
    text: str,
) -> None:
    code, _ = closed_after(websocket_client(Settings()), text)
    assert code == 4400


def test_a_subscription_naming_no_operation_of_its_document_is_refused_as_such() -> None:
    # As a syntax error is: the protocol closes the socket with the reason (strawberry tells
    # these apart by their original error, which masking them as a bug lost).
    client = websocket_client(Settings())
    unknown = closed_after(client, subscribe(operationName="Other"))
    assert unknown == (4400, 'Unknown operation named "Other".')
    long_name = closed_after(client, subscribe(operationName="O" * 200))
    assert long_name[0] == 4400
    fragment_only = message(
        type="subscribe", id="1", payload={"query": "fragment F on Query { a }"}
    )
    assert closed_after(client, fragment_only)[0] == 4400


def test_a_connection_init_token_that_is_not_text_names_no_caller() -> None:
    client = websocket_client(Settings())
    for payload in ('{"token": "\\ud800"}', '{"Authorization": "Bearer \\ud800"}'):
        with client.websocket_connect("/", subprotocols=["graphql-transport-ws"]) as socket:
            socket.send_text(f'{{"type": "connection_init", "payload": {payload}}}')
            with pytest.raises(WebSocketDisconnect) as closed:
                socket.receive_json()
        assert closed.value.code == 4403


def test_a_get_naming_a_query_needs_a_token_even_asking_for_the_page(tmp_path: Any) -> None:
    settings = Settings(graphiql_assets_dir=tmp_path)
    state = {"services": services_without_backends(settings)}
    client = TestClient(TokenGuard(SagalineGraphQL(state, settings), state))
    html = {"Accept": "text/html"}
    # The page is open to all (here it says its assets are missing from tmp_path).
    assert "GraphiQL's assets are not installed" in client.get("/", headers=html).text
    # An operation is not: its validation errors would describe the schema to anyone.
    probe = client.get("/", params={"query": "subscription { eventAppende }"}, headers=html)
    assert probe.status_code == 401 and "Did you mean" not in probe.text


def test_a_close_reason_is_cut_to_what_a_close_frame_holds() -> None:
    assert close_reason("Forbidden") == "Forbidden"
    assert close_reason("\ud800") == "?"
    for long in ("B" * 300, "é" * 100, "\ud800" * 150):
        cut = close_reason(long)
        assert len(cut.encode()) <= 123 and cut.endswith("...")
