"""Bearer API tokens with roles: who may call the API, and who may operate it."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from starlette.datastructures import Headers


class Role(StrEnum):
    CLIENT = "client"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: its role and a stable, non-secret name for audit metadata."""

    role: Role
    name: str

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR


class TokenConfigurationError(ValueError):
    """SAGALINE_API_TOKENS is not a list of token:role pairs."""


def parse_tokens(value: str | None) -> dict[str, Role]:
    """`token:role,token:role` as a mapping; roles are `client` or `operator`."""
    tokens: dict[str, Role] = {}
    for item in filter(None, (part.strip() for part in (value or "").split(","))):
        token, _, role = item.rpartition(":")
        if not token or role not in {r.value for r in Role}:
            raise TokenConfigurationError(
                f"SAGALINE_API_TOKENS: {item[:8]}... is not token:client or token:operator"
            )
        tokens[token] = Role(role)
    return tokens


class TokenCheck:
    """Resolves the bearer token of a request to a caller, comparing in constant time."""

    def __init__(self, tokens: dict[str, Role]) -> None:
        self._tokens = tokens

    def caller(self, headers: Headers) -> Caller | None:
        """The caller behind the request's Authorization header, or None."""
        return self._bearer(headers.get("authorization", ""))

    def caller_in_connection_params(self, params: Mapping[str, object]) -> Caller | None:
        """The caller named by a websocket's connection_init payload, or None.

        Browsers cannot set headers on a websocket, so the payload carries the header instead:
        `{"Authorization": "Bearer <token>"}` (the key in any letter case), or just
        `{"token": "<token>"}`.
        """
        header = next((v for k, v in params.items() if k.lower() == "authorization"), None)
        if isinstance(header, str):
            return self._bearer(header)
        token = params.get("token")
        return self.caller_for(token) if isinstance(token, str) and token else None

    def caller_for(self, token: str) -> Caller | None:
        """The caller a raw token stands for, or None."""
        for known, role in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                fingerprint = hashlib.sha256(token.encode()).hexdigest()[:12]
                return Caller(role, f"{role.value}:{fingerprint}")
        return None

    def _bearer(self, authorization: str) -> Caller | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.caller_for(token.strip())
