"""API token parsing and checking."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from api.auth import Role, TokenCheck, TokenConfigurationError, parse_tokens


def test_tokens_parse_into_roles() -> None:
    assert parse_tokens("abc:client, x:y:operator") == {"abc": Role.CLIENT, "x:y": Role.OPERATOR}
    assert parse_tokens(None) == {}


@pytest.mark.parametrize("value", ["abc", "abc:admin", ":client"])
def test_malformed_tokens_are_rejected(value: str) -> None:
    with pytest.raises(TokenConfigurationError):
        parse_tokens(value)


def test_only_a_known_bearer_token_identifies_a_caller() -> None:
    check = TokenCheck({"secret": Role.OPERATOR})
    caller = check.caller(Headers({"authorization": "Bearer secret"}))
    assert caller is not None and caller.is_operator
    assert "secret" not in caller.name
    assert check.caller(Headers({"authorization": "Bearer wrong"})) is None
    assert check.caller(Headers({"authorization": "Basic secret"})) is None
    assert check.caller(Headers({})) is None


def test_a_connection_init_payload_names_its_caller_like_the_header_or_by_token() -> None:
    check = TokenCheck({"secret": Role.CLIENT})
    for params in (
        {"Authorization": "Bearer secret"},
        {"authorization": "bearer secret"},
        {"token": "secret"},
    ):
        caller = check.caller_in_connection_params(params)
        assert caller is not None and caller.role is Role.CLIENT, params
    for params in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "secret"},
        {"Authorization": "Bearer "},
        {"token": "wrong"},
        {"token": ""},
        {"token": ["secret"]},
        {"password": "secret"},
    ):
        assert check.caller_in_connection_params(params) is None, params
