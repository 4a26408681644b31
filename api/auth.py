"""Who is calling: API tokens with roles (client, operator) and customer sessions."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from starlette.datastructures import Headers

from api.sessions import Sessions


class Role(StrEnum):
    CLIENT = "client"
    OPERATOR = "operator"
    CUSTOMER = "customer"


API_ROLES = (Role.CLIENT, Role.OPERATOR)


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: its role and a stable, non-secret name for audit metadata.

    A customer (a session) also names its user: it sees and acts on that user's things only.
    """

    role: Role
    name: str
    user_id: str | None = None
    lock_epoch: int = 0
    """A customer session's lock epoch: it is revoked once the user has been locked since."""
    expires_at: datetime | None = None
    """When a customer session ends (None for API tokens)."""

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR

    @property
    def customer(self) -> str | None:
        """The user a customer session acts for; None for API tokens."""
        return self.user_id if self.role is Role.CUSTOMER else None


AMBIGUOUS_CREDENTIAL = "more than one Authorization header: send exactly one bearer token"


def ambiguous(headers: Headers) -> bool:
    """Whether a request carries more than one Authorization header.

    Which one counts would be a guess (proxies and frameworks disagree on first or last),
    so such a request is refused rather than admitted as either caller.
    """
    return len(headers.getlist("authorization")) > 1


def fingerprint(token: str) -> str:
    """A stable, non-secret name for an API token (the start of its SHA-256)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


class TokenConfigurationError(ValueError):
    """SAGALINE_API_TOKENS is not a list of token:role pairs."""


def parse_tokens(value: str | None) -> dict[str, Role]:
    """`token:role,token:role` as a mapping; roles are `client` or `operator`."""
    tokens: dict[str, Role] = {}
    for item in filter(None, (part.strip() for part in (value or "").split(","))):
        token, _, role = item.rpartition(":")
        if not token or role not in {r.value for r in API_ROLES}:
            raise TokenConfigurationError(
                f"SAGALINE_API_TOKENS: {item[:8]}... is not token:client or token:operator"
            )
        tokens[token] = Role(role)
    return tokens


def credentials_in_connection_params(params: Mapping[str, object]) -> int:
    """How many credentials a websocket's connection_init payload names."""
    return sum(1 for key in params if key.lower() == "authorization") + ("token" in params)


class TokenCheck:
    """Resolves the bearer token of a request to a caller, comparing in constant time.

    Whether a customer's user is still allowed in (not locked) needs the read model, so it
    is checked apart from this: see `Services.admit`.
    """

    def __init__(self, tokens: dict[str, Role], sessions: Sessions | None = None) -> None:
        # Each API token's caller is named once: its fingerprint is a hash of the token.
        self._callers = {
            token.encode(): Caller(role, f"{role.value}:{fingerprint(token)}")
            for token, role in tokens.items()
        }
        self.sessions = sessions

    def caller(self, headers: Headers) -> Caller | None:
        """The caller behind the request's Authorization header, or None (also when it has
        more than one: an ambiguous credential names no one, see `ambiguous`)."""
        if ambiguous(headers):
            return None
        return self._bearer(headers.get("authorization", ""))

    def caller_in_connection_params(self, params: Mapping[str, object]) -> Caller | None:
        """The caller named by a websocket's connection_init payload, or None.

        Browsers cannot set headers on a websocket, so the payload carries the header instead:
        `{"Authorization": "Bearer <token>"}` (the key in any letter case), or just
        `{"token": "<token>"}`.

        Like the header, the payload must name one credential: two `Authorization` keys
        (in different letter cases), or one besides a `token`, name no one.
        """
        headers = [v for k, v in params.items() if k.lower() == "authorization"]
        if credentials_in_connection_params(params) != 1:
            return None
        if headers:
            header = headers[0]
            return self._bearer(header) if isinstance(header, str) else None
        token = params["token"]
        return self.caller_for(token) if isinstance(token, str) and token else None

    def caller_for(self, token: str) -> Caller | None:
        """The caller a raw token stands for, or None."""
        try:
            presented = token.encode()
        except UnicodeEncodeError:  # a lone surrogate, from a connection_init payload
            return None
        for known, caller in self._callers.items():
            if hmac.compare_digest(known, presented):
                return caller
        session = None if self.sessions is None else self.sessions.verify(token)
        if session is None:
            return None
        return Caller(
            Role.CUSTOMER,
            f"customer:{session.user_id}",
            session.user_id,
            session.lock_epoch,
            session.expires_at,
        )

    def _bearer(self, authorization: str) -> Caller | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.caller_for(token.strip())
