"""Plain JSON POSTs skip strawberry's HTTP view and are answered exactly as the view answers
them; every other request still goes through the view."""

from __future__ import annotations

from typing import Any, cast

import pytest
from starlette.testclient import TestClient

from api.app import SagalineGraphQL
from api.auth import TokenCheck, parse_tokens
from api.context import Services
from api.json_posts import is_json
from runtime.config import Settings

GRAPHQL_RESPONSE = "application/graphql-response+json"
PLAIN_POSTS: list[tuple[dict[str, Any], dict[str, str]]] = [
    ({"query": "{ __typename }"}, {}),
    ({"query": "query Q { __typename }", "operationName": "Q", "variables": None}, {}),
    ({"query": "{ __typename }", "extensions": {"any": 1}}, {"Accept": GRAPHQL_RESPONSE}),
    ({"query": "{ __typename"}, {}),
    ({"query": "{ __typename"}, {"Accept": GRAPHQL_RESPONSE}),
    ({"query": "{ noSuchField }"}, {"Accept": GRAPHQL_RESPONSE}),
    ({"query": 'query { user(id: "not an id") { id } }'}, {}),
    ({"query": 'query { user(id: "not an id") { id } }'}, {"Accept": GRAPHQL_RESPONSE}),
    ({"query": "query ($id: ID!) { user(id: $id) { id } }", "variables": {"id": 5.5}}, {}),
    ({"query": "query A { __typename } query B { __typename }"}, {}),
    ({"query": "query A { __typename }", "operationName": "B"}, {}),
    ({"query": ""}, {}),
    ({"query": 'subscription { transferUpdated(id: "t-1") { id } }'}, {}),
    ({"query": "{ __typename }"}, {"Content-Type": "application/json; charset=UTF-8"}),
]
VIEW_POSTS: list[tuple[bytes, dict[str, str]]] = [
    (b'{"query": "{ __typename }"}', {"Content-Type": "text/plain"}),
    (b'{"query": "{ __typename }"}', {"Content-Type": "application/json; charset=latin-1"}),
    (b'[{"query": "{ __typename }"}]', {"Content-Type": "application/json"}),
    (b'{"query": "{ __typename }", "variables": "x"}', {"Content-Type": "application/json"}),
    (b'{"query": 5}', {"Content-Type": "application/json"}),
    (b'{"query": ', {"Content-Type": "application/json"}),
    (b"{}", {"Content-Type": "application/json"}),
]


class CountingView(SagalineGraphQL):
    """The view, counting the requests answered on the plain path, which can be switched off."""

    plain = True
    answered_plainly = 0

    def _plain_posts(self) -> bool:
        return self.plain and super()._plain_posts()

    async def _answer(self, *args: Any, **kwargs: Any) -> Any:
        self.answered_plainly += 1
        return await super()._answer(*args, **kwargs)


def view() -> CountingView:
    settings = Settings()
    services = Services(
        settings=settings,
        engine=cast(Any, None),
        temporal=cast(Any, None),
        tokens=TokenCheck(parse_tokens("t:client")),
        feed=cast(Any, None),
        reads=cast(Any, None),
        primary_reads=cast(Any, None),
    )
    return CountingView({"services": services}, settings)


def seen(response: Any) -> tuple[int, str | None, str | None, bytes]:
    return (
        response.status_code,
        response.headers.get("content-type"),
        response.headers.get("retry-after"),
        response.content,
    )


@pytest.mark.parametrize(("body", "headers"), PLAIN_POSTS)
def test_a_plain_post_is_answered_as_the_view_answers_it(
    body: dict[str, Any], headers: dict[str, str]
) -> None:
    app = view()
    client = TestClient(app)
    app.plain = False
    by_view = seen(client.post("/", json=body, headers=headers))
    assert app.answered_plainly == 0
    app.plain = True
    plainly = seen(client.post("/", json=body, headers=headers))
    assert app.answered_plainly == 1
    assert plainly == by_view


@pytest.mark.parametrize(("body", "headers"), VIEW_POSTS)
def test_anything_else_goes_through_the_view(body: bytes, headers: dict[str, str]) -> None:
    app = view()
    response = TestClient(app).post("/", content=body, headers=headers)
    assert app.answered_plainly == 0
    assert response.status_code in (200, 400)


def test_the_plain_path_is_off_when_the_schema_takes_strawberry_s_path() -> None:
    app = view()
    app.schema.extensions = [*app.schema.extensions, type("Another", (), {})]
    assert not app._plain_posts()


@pytest.mark.parametrize(
    ("content_type", "plain"),
    [
        ("application/json", True),
        ("Application/JSON", True),
        ("application/json; charset=utf-8", True),
        ("application/json;charset=UTF-8", True),
        ("application/json; charset=latin-1", False),
        ("application/json; boundary=x", False),
        ("application/graphql-response+json", False),
        ("text/plain", False),
        ("", False),
    ],
)
def test_only_json_in_utf_8_is_a_plain_content_type(content_type: str, plain: bool) -> None:
    assert is_json(content_type) is plain
