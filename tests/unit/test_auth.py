"""API token parsing and checking."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from starlette.datastructures import Headers

from api.auth import Role, TokenCheck, TokenConfigurationError, ambiguous, parse_tokens
from api.sessions import Sessions


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


def test_two_authorization_headers_name_no_caller_even_if_both_are_valid() -> None:
    check = TokenCheck({"secret": Role.OPERATOR, "other": Role.CLIENT})
    for values in (("secret", "other"), ("other", "secret"), ("secret", "secret")):
        raw = [(b"authorization", f"Bearer {value}".encode()) for value in values]
        headers = Headers(raw=raw)
        assert ambiguous(headers)
        assert check.caller(headers) is None, values


def test_a_connection_init_payload_naming_two_credentials_names_no_caller() -> None:
    check = TokenCheck({"secret": Role.OPERATOR, "other": Role.CLIENT})
    for params in (
        {"Authorization": "Bearer secret", "authorization": "Bearer other"},
        {"Authorization": "Bearer other", "token": "secret"},
        {"token": "secret", "authorization": "Bearer secret"},
    ):
        assert check.caller_in_connection_params(params) is None, params


def test_an_api_token_is_named_by_its_role_and_the_start_of_its_sha256_on_every_request() -> None:
    check = TokenCheck({"secret": Role.CLIENT, "other": Role.OPERATOR})
    digest = hashlib.sha256(b"secret").hexdigest()[:12]
    for _ in range(2):
        caller = check.caller(Headers({"authorization": "Bearer secret"}))
        assert caller is not None and caller.name == f"client:{digest}"
    operator = check.caller_for("other")
    assert operator is not None and operator.role is Role.OPERATOR
    assert operator.name == f"operator:{hashlib.sha256(b'other').hexdigest()[:12]}"


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


def sessions() -> Sessions:
    return Sessions(b"k" * 32, timedelta(minutes=5))


def test_a_session_token_names_its_user_until_it_expires() -> None:
    issued_at = datetime(2030, 1, 1, tzinfo=UTC)
    token, session = sessions().issue("user-1", issued_at)
    assert sessions().verify(token, issued_at + timedelta(minutes=4)) == session
    assert session.user_id == "user-1"
    assert sessions().verify(token, issued_at + timedelta(minutes=5)) is None


def test_a_session_token_signed_with_another_key_or_altered_is_refused() -> None:
    token, _ = sessions().issue("user-1")
    assert Sessions(b"x" * 32, timedelta(minutes=5)).verify(token) is None
    body, _, signature = token.rpartition(".")
    prefix, user, expiry, epoch, session_id = body.split(".")
    other_user = base64.urlsafe_b64encode(b"user-2").decode().rstrip("=")
    forged = f"{prefix}.{other_user}.{expiry}.{epoch}.{session_id}.{signature}"
    assert sessions().verify(forged) is None
    assert sessions().verify(f"{prefix}.{user}.{expiry}.7.{session_id}.{signature}") is None
    later = int(expiry) + 60
    assert sessions().verify(f"{prefix}.{other_user}.{later}.{epoch}.{session_id}.x") is None
    assert sessions().verify("not.a.session") is None


def test_a_session_token_carries_the_lock_epoch_it_was_issued_under() -> None:
    token, session = sessions().issue("user-1", lock_epoch=4)
    verified = sessions().verify(token)
    assert verified is not None and verified.lock_epoch == session.lock_epoch == 4
    caller = TokenCheck({}, sessions()).caller_for(token)
    assert caller is not None and caller.lock_epoch == 4


def test_a_session_token_is_a_customer_caller_bound_to_its_user() -> None:
    check = TokenCheck({"secret": Role.CLIENT}, sessions())
    token, _ = sessions().issue("user-1")
    caller = check.caller(Headers({"authorization": f"Bearer {token}"}))
    assert caller is not None and caller.role is Role.CUSTOMER and caller.customer == "user-1"
    assert not caller.is_operator
    assert TokenCheck({"secret": Role.CLIENT}).caller_for(token) is None


def test_customer_is_not_a_role_an_api_token_can_have() -> None:
    with pytest.raises(TokenConfigurationError):
        parse_tokens("abc:customer")


def test_a_token_holding_a_lone_surrogate_names_no_caller() -> None:
    sessions = Sessions(b"k" * 32, timedelta(minutes=5))
    check = TokenCheck(parse_tokens("t:client"), sessions)
    assert check.caller_in_connection_params({"token": "\ud800"}) is None
    assert check.caller_in_connection_params({"Authorization": "Bearer t\ud800"}) is None
    assert sessions.verify("s2.\ud800.1.0.x.y") is None
