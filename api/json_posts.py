"""Which HTTP requests are plain JSON POSTs of one operation, the API's common case.

Strawberry's HTTP view handles every transport a GraphQL server may speak (batches, GET,
multipart uploads, streamed answers); for each request it parses the Content-Type with
`email.message`, looks for a streaming transport in the Accept header and checks the result
against its streaming protocols. For a POST of `application/json` holding one operation
none of that changes the answer, so `SagalineGraphQL` answers it by the steps the view would
take (api/app.py). Anything else, a malformed body included (api/request_shapes.py's rules
decide), goes through the view, which refuses it.
"""

from __future__ import annotations

from starlette.requests import Request
from strawberry.http import GraphQLRequestData

from api.edge import BODY_SCOPE_KEY
from api.request_shapes import decoded_json, is_operation_name

JSON = "application/json"
PLAIN_PARAMETERS = ("", "charset=utf-8")


def is_json(content_type: str) -> bool:
    """Whether a Content-Type is application/json, with no parameter but charset=utf-8."""
    media_type, _, parameters = content_type.partition(";")
    return (
        media_type.strip().lower() == JSON
        and parameters.strip().lower().replace(" ", "") in PLAIN_PARAMETERS
    )


async def plain_operation(request: Request) -> GraphQLRequestData | None:
    """The operation of a plain JSON POST, or None for any other request (the view's)."""
    if request.method != "POST" or not is_json(request.headers.get("content-type", "")):
        return None
    body = request.scope.get(BODY_SCOPE_KEY)
    try:
        data = decoded_json(body if isinstance(body, bytes) else await request.body())
    except ValueError:
        return None
    if type(data) is not dict:
        return None
    query = data.get("query")
    variables = data.get("variables")
    operation_name = data.get("operationName")
    extensions = data.get("extensions")
    if (
        not isinstance(query, str)
        or not isinstance(variables, dict | None)
        or not is_operation_name(operation_name)
        or not isinstance(extensions, dict | None)
    ):
        return None
    return GraphQLRequestData(
        query=query, variables=variables, operation_name=operation_name, extensions=extensions
    )
