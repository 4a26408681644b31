"""Bad input a mutation refuses before it does anything: no database, no workflow behind it.

The services here have nothing to connect to, so an answer at all shows that the input was
refused before any of it was needed.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import SagalineGraphQL
from runtime.config import Settings
from tests.unit.test_http_edge_rules import services_without_backends

REGISTER = """
mutation($in: RegisterUserInput!) {
  registerUser(input: $in) { __typename ... on InvalidInput { field message } }
}"""
CHANGE_EMAIL = """
mutation($in: ChangeUserEmailInput!) {
  changeUserEmail(input: $in) { __typename ... on InvalidInput { field message } }
}"""


def answer(query: str, variables: dict[str, Any]) -> Any:
    settings = Settings()
    client = TestClient(
        SagalineGraphQL({"services": services_without_backends(settings)}, settings)
    )
    response = client.post(
        "/",
        json={"query": query, "variables": variables},
        headers={"Authorization": "Bearer t"},
    )
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


@pytest.mark.parametrize(
    "name",
    [
        "Ann\u202egnp.exe",  # right-to-left override
        "\u2066Ann\u2069",  # left-to-right isolate ... pop directional isolate
        "\u2067Ann",  # right-to-left isolate
        "\u2068Ann",  # first strong isolate
        "An\u200bn",  # zero-width space
        "\ufeffAnn",  # byte order mark
        "Ann\u200f",  # right-to-left mark
        "Ann\u2028",  # line separator, at the end
        "Ann\x85",  # C1 next line, at the end
        "\x1bAnn",  # C0 escape
    ],
)
def test_a_name_with_bidi_format_or_control_characters_is_invalid_input(name: str) -> None:
    variables = {"in": {"email": "ann@example.com", "name": name, "password": "a long password"}}
    refused = answer(REGISTER, variables)["registerUser"]
    assert refused["__typename"] == "InvalidInput" and refused["field"] == "name", refused


def test_a_negative_expected_version_is_invalid_input() -> None:
    variables = {"in": {"userId": "u-1", "newEmail": "ann@example.com", "expectedVersion": -1}}
    refused = answer(CHANGE_EMAIL, variables)["changeUserEmail"]
    assert refused == {
        "__typename": "InvalidInput",
        "field": "expectedVersion",
        "message": "expectedVersion: must be a version: 0 or more",
    }
