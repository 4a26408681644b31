"""The ASGI application: GraphQL (with GraphiQL) at /graphql, GraphiQL's assets, health probes,
/metrics and /status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from cross_web import HTTPException
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.datastructures import Headers, QueryParams
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketClose
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from adapters.database import ReadPool, create_engine
from adapters.event_store import PostgresEventStore
from adapters.temporal import connect
from adapters.tracing import tracing_on
from api.auth import AMBIGUOUS_CREDENTIAL, Caller, Role, TokenCheck, ambiguous, parse_tokens
from api.consistency import CONSISTENT_WITH_HEADER
from api.context import Context, Services
from api.edge import BodyLimit
from api.execution import SagalineSchema
from api.exposition import ApiMetrics, observability_routes
from api.graphiql import ASSETS_PATH, DEFAULT_ASSETS_DIR, GraphiQLPage
from api.json_posts import plain_operation
from api.live import EventFeed
from api.metrics import GraphQLMetrics
from api.outages import AnswerOutages, nothing_ran, retry_after_headers
from api.request_shapes import decoded_json, operation_request
from api.schema import build_schema
from api.sessions import Sessions
from api.tracing import TraceRequests
from api.websocket_auth import TokenAtConnectionInit
from api.websocket_limits import BoundedCloseReasons
from projections.consistency import CheckpointWakeups
from runtime.config import Settings

ANONYMOUS = Caller(Role.CLIENT, "anonymous")
CALLER_SCOPE_KEY = "sagaline.caller"
"""Where TokenGuard leaves the caller it admitted, for the request's context."""
CONNECTION_INIT_WITHIN = timedelta(seconds=10)
# Plain connections for the reads on nearly every request (`account`, a customer's access).
READ_CONNECTIONS = 10
# The same on the primary, for the users behind customer requests: their reads are grouped
# (one statement in flight at a time), so a second connection only serves a retry.
ADMISSION_CONNECTIONS = 2


GRAPHQL_RESPONSE = "application/graphql-response+json"


def accepts_graphql_response(accept: str) -> bool:
    """Whether an Accept header lists application/graphql-response+json (with q above 0)."""
    for item in accept.split(","):
        media_type, *params = (part.strip().lower() for part in item.split(";"))
        if media_type == GRAPHQL_RESPONSE:
            weights = [p.removeprefix("q=") for p in params if p.startswith("q=")]
            try:
                return not weights or float(weights[0]) > 0
            except ValueError:
                return False
    return False


def is_request_error(response: GraphQLHTTPResponse) -> bool:
    """Whether the operation failed before executing (parse, validation, variables)."""
    # Execution errors carry the path of their field; errors before execution have none.
    errors = response.get("errors") or []
    return (
        response.get("data") is None
        and bool(errors)
        and all(isinstance(e, dict) and "path" not in e for e in errors)
    )


class GraphQLResponseSubResponse(Response):
    """A sub-response that remembers the client accepts application/graphql-response+json."""


def empty_sub_response(sub_response: Response) -> Response:
    """A sub-response as strawberry's view makes one: no status, no headers of its own."""
    sub_response.status_code = None  # type: ignore[assignment]
    del sub_response.headers["content-length"]
    return sub_response


class SagalineGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app with sagaline's typed context, GraphQL over HTTP's media type,
    and GraphiQL loading its assets from the API."""

    graphql_transport_ws_handler_class = TokenAtConnectionInit
    websocket_adapter_class = BoundedCloseReasons

    def __init__(
        self,
        state: dict[str, Services],
        settings: Settings,
        metrics: GraphQLMetrics | None = None,
    ) -> None:
        # GET only serves the GraphiQL page: operations are POSTed with a bearer token.
        # Websockets speak graphql-transport-ws only, whose connection_init may carry the
        # token; a socket that names no caller soon after opening is closed.
        super().__init__(
            build_schema(settings.api_max_selection_cost, metrics, settings.api_max_answer_cost),
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=CONNECTION_INIT_WITHIN,
            allowed_origins=settings.cors_origins(),
        )
        self._state = state
        self.graphiql = GraphiQLPage(settings.graphiql_assets_dir or DEFAULT_ASSETS_DIR)
        # No streamed answers over HTTP (multipart, SSE): a plain POST is answered in one.
        self._streams = bool(self._stream_transport_map)
        # A plain POST's sub-response is only read (context and resolvers cannot reach it):
        # one empty one of each kind serves every such request.
        self._plain_sub_responses = (
            empty_sub_response(Response()),
            empty_sub_response(GraphQLResponseSubResponse()),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        # As strawberry's ASGI app answers HTTP, with plain JSON POSTs taken straight to
        # execution (api/json_posts.py); the view gets the same Request, body already read.
        request = Request(scope=scope, receive=receive)
        try:
            operation = None if not self._plain_posts() else await plain_operation(request)
            if operation is None:
                response = await self.run(request)
            else:
                response = await self._answer(request, operation)
        except HTTPException as error:
            response = PlainTextResponse(error.reason, status_code=error.status_code)
        await response(scope, receive, send)

    def _plain_posts(self) -> bool:
        return (
            not self._streams
            and isinstance(self.schema, SagalineSchema)
            and self.schema.runs_directly()
        )

    async def _answer(self, request: Request, operation: GraphQLRequestData) -> Response:
        """What the view's `run` answers to a plain JSON POST, by the same steps."""
        accepts = accepts_graphql_response(request.headers.get("accept", ""))
        sub_response = self._plain_sub_responses[accepts]
        context = await self.get_context(request, response=sub_response)
        result = await self.execute_single(
            request=request,
            request_adapter=self.request_adapter_class(request),
            sub_response=sub_response,
            context=context,
            root_value=None,
            request_data=operation,
        )
        response_data = await self.process_result(request=request, result=result)
        if result.errors:
            self._handle_errors(result.errors, response_data)
        return self.create_response(response_data=response_data, sub_response=sub_response)

    async def render_graphql_ide(self, request: Request) -> Response:
        return self.graphiql.render()

    def decode_json(self, data: str | bytes) -> object:
        return decoded_json(data)

    def parse_json(self, data: str | bytes) -> object:
        # Also parses a GET's `variables`, which must be an object as well.
        return operation_request(super().parse_json(data))

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        if not accepts_graphql_response(request.headers.get("accept", "")):
            return await super().get_sub_response(request)
        return empty_sub_response(GraphQLResponseSubResponse())

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        # application/json answers 200 whatever the errors (the legacy behaviour clients
        # rely on); application/graphql-response+json answers a request error with 400 and
        # no `data` entry, since nothing was executed. Under either, an operation stopped
        # entirely by an outage answers 503 with Retry-After (README, "Outages").
        if nothing_ran(response_data):
            response = super().create_response(response_data, sub_response)
            response.status_code = 503
            response.headers.update(retry_after_headers())
            if isinstance(sub_response, GraphQLResponseSubResponse):
                response.headers["content-type"] = GRAPHQL_RESPONSE
            return response
        if not isinstance(sub_response, GraphQLResponseSubResponse):
            return super().create_response(response_data, sub_response)
        request_error = isinstance(response_data, dict) and is_request_error(response_data)
        if isinstance(response_data, dict) and request_error:
            without_data = GraphQLHTTPResponse(errors=response_data.get("errors"))
            if response_data.get("extensions"):
                without_data["extensions"] = response_data["extensions"]
            response_data = without_data
        response = super().create_response(response_data, sub_response)
        response.headers["content-type"] = GRAPHQL_RESPONSE
        if request_error:
            response.status_code = 400
        return response

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        services = self._state["services"]
        # TokenGuard lets a request without a valid token through only for the GraphiQL
        # page, which executes nothing, and for a websocket, whose connection_init names
        # its caller before any operation runs (TokenAtConnectionInit).
        caller = request.scope.get(CALLER_SCOPE_KEY) or ANONYMOUS
        return Context(services=services, request=request, caller=caller)


class TokenGuard:
    """Refuses GraphQL requests without a valid bearer token (the GraphiQL page is open).

    A websocket opened without an Authorization header goes through: browsers cannot set
    one, so it presents its token in connection_init instead.
    """

    def __init__(self, app: ASGIApp, state: dict[str, Services]) -> None:
        self._app = app
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        services = self._state.get("services")
        # Only the page itself: a GET naming a `query` is an operation (validated, then
        # refused, by strawberry), which needs a token like any other.
        wants_page = (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and "text/html" in headers.get("accept", "")
            and "query" not in QueryParams(scope["query_string"])
        )
        token_later = scope["type"] == "websocket" and "authorization" not in headers
        caller = None
        if services is not None and not wants_page and not token_later:
            caller = await services.admit(services.tokens.caller(headers))
            scope[CALLER_SCOPE_KEY] = caller
        if wants_page or token_later or caller is not None:
            await self._app(scope, receive, send)
            return
        reason = AMBIGUOUS_CREDENTIAL if ambiguous(headers) else "missing or invalid bearer token"
        if scope["type"] == "websocket":
            close = WebSocketClose(code=4401, reason=reason)
            await close(scope, receive, send)
            return
        refusal = JSONResponse(
            {"errors": [{"message": reason}]},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await refusal(scope, receive, send)


def read_models_engine(settings: Settings) -> AsyncEngine | None:
    """The engine of SAGALINE_READ_DATABASE_URL (a replica), or None to read the primary."""
    if not settings.reads_replica():
        return None
    return create_engine(settings.require_read_database_url(), pool_size=20, autocommit=True)


def create_app(settings: Settings) -> Starlette:
    """The API app; its services connect when the app starts, not at import."""
    state: dict[str, Services] = {}
    # With SAGALINE_METRICS=false: no registry, no instruments in the schema, no /metrics.
    metrics = ApiMetrics() if settings.metrics else None
    graphql_metrics = metrics.graphql if metrics is not None else None
    view = SagalineGraphQL(state, settings, graphql_metrics)
    graphql = TokenGuard(view, state)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The API only reads (commands go through Temporal): one round trip per query.
        engine = create_engine(settings.require_database_url(), pool_size=20, autocommit=True)
        read_models = read_models_engine(settings)
        temporal = await connect(settings.require_temporal_address(), settings.temporal_namespace)
        sessions = Sessions(
            settings.require_session_key(), timedelta(seconds=settings.session_ttl_seconds)
        )
        tokens = TokenCheck(parse_tokens(settings.api_tokens), sessions)
        feed = EventFeed(PostgresEventStore(engine), settings.require_database_url())
        await feed.start()
        wakeups = CheckpointWakeups(settings.require_database_url())
        await wakeups.start()
        reads = ReadPool(settings.require_read_database_url(), READ_CONNECTIONS)
        primary_reads = ReadPool(settings.require_database_url(), ADMISSION_CONNECTIONS)
        services = Services(
            settings=settings,
            engine=engine,
            temporal=temporal,
            tokens=tokens,
            feed=feed,
            graphql_metrics=graphql_metrics,
            read_models=read_models,
            reads=reads,
            primary_reads=primary_reads,
            checkpoint_wakeups=wakeups,
        )
        state["services"] = services
        if metrics is not None:
            metrics.watch_pool(engine)
        try:
            yield
        finally:
            if metrics is not None:
                metrics.forget_pool()
            await wakeups.stop()
            await feed.stop()
            await reads.close()
            await primary_reads.close()
            await engine.dispose()
            if read_models is not None:
                await read_models.dispose()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        services = state.get("services")
        if services is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            for engine in {services.engine, services.read_engine}:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception:
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route(ASSETS_PATH + "/{path:path}", view.graphiql.serve_asset, methods=["GET"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *observability_routes(state, metrics),
        ],
        middleware=edge_middleware(settings),
        lifespan=lifespan,
    )


def edge_middleware(settings: Settings) -> list[Middleware]:
    """A request's span when tracing is on; CORS for the configured origins (outside the
    rest, so refusals carry its headers too), the body limit, then a 503 for an outage that
    escapes the GraphQL execution."""
    middleware = [
        Middleware(BodyLimit, max_bytes=settings.api_max_body_bytes),
        Middleware(AnswerOutages),
    ]
    origins = settings.cors_origins()
    if origins:
        cors = Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Accept", CONSISTENT_WITH_HEADER],
            max_age=600,
        )
        middleware.insert(0, cors)
    if tracing_on():
        middleware.insert(0, Middleware(TraceRequests))
    return middleware
