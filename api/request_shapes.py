"""What a request must look like before strawberry reads it: a JSON object of a GraphQL
request over HTTP, a graphql-transport-ws message on a websocket.

Strawberry reads both as if they had that shape and fails on one that has not with an
internal error (HTTP 500, or a socket dropped without a close code). What does not fit is
refused here instead, as the protocol has it: HTTP 400, or close code 4400.
"""

from __future__ import annotations

import json
import re

from cross_web import HTTPException

GRAPHQL_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
NOT_A_REQUEST = "The GraphQL request must be a JSON object (or a list of them)."
NOT_AN_OPERATION_NAME = (
    "The GraphQL operation's `operationName` must be a GraphQL name or null, if provided."
)
MAX_OPERATION_ID_LENGTH = 64
"""A subscription's id is echoed in close reasons, which hold at most 123 bytes."""
_OPERATION_ID = re.compile(rf"[ -~]{{1,{MAX_OPERATION_ID_LENGTH}}}")


def decoded_json(data: str | bytes) -> object:
    """A request body or websocket message as JSON; text that is not UTF-8, nested too
    deeply for the decoder, or holding an integer of more digits than Python converts, is
    refused as JSON that does not parse (HTTP 400, close 4400)."""
    try:
        return json.loads(data)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as error:
        # UnicodeDecodeError is a ValueError, as is the integer conversion's limit.
        raise json.JSONDecodeError(f"not JSON: {type(error).__name__}", "", 0) from None


def is_operation_name(name: object) -> bool:
    """Whether an `operationName` is absent or a GraphQL name."""
    return name is None or (isinstance(name, str) and GRAPHQL_NAME.fullmatch(name) is not None)


def operation_request(data: object) -> object:
    """An HTTP request's parsed body, if it has the form of a GraphQL request (or a batch of
    them, which strawberry refuses itself); else HTTP 400 instead of an internal error."""
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise HTTPException(400, NOT_A_REQUEST)
    # Strawberry would echo a wrong one in a plain-text 400 ("Unknown operation named ..."),
    # which a lone surrogate cannot be encoded in.
    if not is_operation_name(data.get("operationName")):
        raise HTTPException(400, NOT_AN_OPERATION_NAME)
    return data


def malformed_message(message: object) -> str | None:
    """Why a graphql-transport-ws message does not have its type's shape, or None if it has."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "a message must be a JSON object with a string `type`"
    kind = message["type"]
    if kind not in ("subscribe", "complete"):
        return None
    operation_id = message.get("id")
    if not isinstance(operation_id, str) or not _OPERATION_ID.fullmatch(operation_id):
        return (
            f"a {kind} message's `id` must be 1-{MAX_OPERATION_ID_LENGTH} printable ASCII "
            "characters"
        )
    if kind == "complete":
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return "a subscribe message's `payload` must be an object with a string `query`"
    for key in ("variables", "extensions"):
        if not isinstance(payload.get(key), dict | None):
            return f"a subscribe message's `{key}` must be an object or null"
    if not is_operation_name(payload.get("operationName")):
        return NOT_AN_OPERATION_NAME
    return None
