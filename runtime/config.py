"""Configuration: every SAGALINE_* environment variable is read here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Generous: on a loaded 2-core machine the embedded components and the Python processes
# take far longer to start than on an idle one.
STARTUP_TIMEOUT_SECONDS = 240.0
MIN_SESSION_KEY_LENGTH = 32


class Settings(BaseSettings):
    """Runtime settings; an unset external address means "start the embedded component"."""

    model_config = SettingsConfigDict(env_prefix="SAGALINE_", extra="ignore")

    data_dir: Path = Path(".sagaline")

    database_url: str | None = None
    read_database_url: str | None = None
    """Where the API queries read models and waits on `consistentWith`: one streaming replica
    of the primary (unset: the primary itself). Commands, sign-in and access checks, the
    event store and its live feed stay on the primary."""
    postgres_port: int = 55432

    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_task_queue: str = "sagaline"
    """The commands' and sagas' task queue, polled by `sagaline worker`."""
    temporal_followers_task_queue: str | None = None
    """The followers' task queue (relay, projectors, pattern detector, projection rebuilds),
    polled by `sagaline followers` (unset: the commands' queue with "-followers" added)."""
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    temporal_ui_url: str | None = None

    kafka_bootstrap: str | None = None
    kafka_port: int = 9092
    kafka_topic: str = "sagaline.events"
    kafka_partitions: int = Field(default=6, ge=1)
    kafka_idempotent_producer: bool = False
    kafka_request_timeout_ms: int = Field(default=5_000, gt=0)
    """How long the relay waits for the broker's ack before retrying the batch."""
    relay_coalesce_ms: float = Field(default=10.0, ge=0)
    """How long the relay, busy, lets commits gather before its next batch (see Pacing)."""
    projector_coalesce_ms: float = Field(default=50.0, ge=0)
    """The same for the projectors of read models no mutation's answer is read from."""
    answered_projector_coalesce_ms: float = Field(default=0.0, ge=0)
    """The same for the read models mutations answer from (transfers, accounts, users):
    their answers wait for them (read-your-writes)."""
    kafka_dead_letter_suffix: str = ".dlq"
    kafka_consumer_max_attempts: int = Field(default=3, ge=1)
    kafka_consumer_session_timeout_ms: int = Field(default=10_000, gt=0)
    """How soon the group notices a consumer that died and hands its partitions on."""

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_tokens: str | None = None
    session_key: str | None = None
    """Signs customer sessions; every API process must share it (`up` makes a dev one)."""
    session_ttl_seconds: int = Field(default=3_600, gt=0)
    """How long a customer session from `authenticate` lasts."""
    api_max_body_bytes: int = Field(default=1_048_576, gt=0)
    """Largest request body the API reads; a larger one is answered 413 before parsing."""
    api_max_selection_cost: int = Field(default=300, gt=0)
    """Most fields one GraphQL document may select, fragments counted where spread."""
    api_max_answer_cost: int = Field(default=10_000, gt=0)
    """Most values the answer to one GraphQL request may hold by estimate: what a list
    selects counted once per item of its page (`first`, 20 without it), or per 100 items for
    a list without pages (a user's accounts)."""
    api_max_consistency_waits: int = Field(default=8, gt=0)
    """Queries that may wait on `consistentWith` at once; one more is refused at once."""
    api_max_websockets_per_user: int = Field(default=16, gt=0)
    """Websockets a customer's user, over all its sessions, may hold open at once on one API
    process; one more is closed with 4429 before it is acknowledged."""
    api_max_websockets_per_token: int = Field(default=0, ge=0)
    """Websockets one API token (a back end, acting for many customers) may hold open at
    once on one API process; 0: no bound."""
    api_max_websockets_awaiting_init: int = Field(default=256, gt=0)
    """Websockets that may be open at once on one API process without their connection_init
    handled yet (no caller named); one more is closed with 1013 (try again later) at once."""
    api_cors_origins: str = ""
    """Comma-separated origins whose browser pages may call the API ("*": any)."""
    graphiql_assets_dir: Path | None = None
    """Where GraphiQL's scripts were installed (default: build/graphiql in the checkout)."""

    metrics: bool = True
    """Record Prometheus metrics and serve them (the API's /metrics, a worker's ports);
    false: every instrument is left out and nothing is served."""
    worker_metrics_host: str = "127.0.0.1"
    """Where a worker's metrics listen (0.0.0.0 in a container that Prometheus scrapes)."""
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535)
    """Port of a worker's /metrics (0: none)."""
    worker_temporal_metrics_port: int = Field(default=9465, ge=0, le=65535)
    """Port of the Temporal SDK's own metrics in a worker, at /metrics (0: none)."""
    followers_metrics_port: int = Field(default=9466, ge=0, le=65535)
    """Port of the followers process's /metrics (0: none); it listens on the worker's host."""
    followers_temporal_metrics_port: int = Field(default=9467, ge=0, le=65535)
    """Port of the Temporal SDK's own metrics in the followers process (0: none)."""

    snapshot_every: str = ""
    """Per aggregate type, events between snapshots, e.g. "User=100,Account=50"."""
    aggregate_cache_size: int = Field(default=10_000, ge=0)
    """Aggregates a worker keeps in memory between commands (0: none)."""
    workflow_sandbox: bool = False
    """Run the worker's workflows in Temporal's workflow sandbox, which checks them for
    non-deterministic calls at a cost of 8 to 18 ms of worker CPU per transfer; the tests always
    run them in it (see `runtime.worker.workflow_runner`)."""

    command_timeout_seconds: float = Field(default=10.0, gt=0)
    consistency_timeout_seconds: float = Field(default=5.0, gt=0)
    compensation_attempts: int = Field(default=8, ge=1)
    """How often a transfer saga tries a failing compensation before it parks for an operator."""
    command_attempts: int = Field(default=5, ge=1)
    """How often a worker tries a command (or saga step) that fails for a reason that is
    neither a rule nor an outage before it fails for good; an outage never counts down."""
    workflow_task_timeout_seconds: float = Field(default=10.0, ge=1, le=120)
    """The workflow task timeout of the workflows the API starts (Temporal's default is 10 s,
    its most 120 s). A transfer's step keeps its task open and is renewed at 80 % of this,
    so a cancellation reaches a saga within about twice that; shorter also times out more
    tasks that a loaded worker is slow to finish, and each such task is run again."""

    startup_timeout_seconds: float = Field(default=STARTUP_TIMEOUT_SECONDS, gt=0)
    """How long `up` waits for the whole stack before it names the part that is late."""

    restart_max_crashes: int = Field(default=5, ge=1)
    """Crashes of one part of `up` within the restart window that stop the whole stack."""
    restart_window_seconds: float = Field(default=60.0, gt=0)
    restart_backoff_seconds: float = Field(default=1.0, gt=0)
    """Wait before restarting a crashed part; doubled for each crash within the window."""
    restart_backoff_max_seconds: float = Field(default=30.0, gt=0)

    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    """"json": one JSON object a line, with the trace, correlation and workflow ids known."""

    tracing: bool = False
    """Record OpenTelemetry traces; setting `otlp_endpoint` turns them on as well."""
    otlp_endpoint: str | None = None
    """Where traces go over OTLP/HTTP, e.g. http://collector:4318 (unset: files in the data
    dir, when tracing is on)."""
    trace_file_max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    """Size at which a process's trace file is renamed `<role>.1.jsonl` (replacing the one
    before) and a new one begun: at most about twice this on disk per process role."""

    def require_database_url(self) -> str:
        """The database URL, which must be known by the time a process connects."""
        if not self.database_url:
            raise ConfigurationError("SAGALINE_DATABASE_URL is not set")
        return self.database_url

    def require_read_database_url(self) -> str:
        """The database the API reads its read models from: the replica if set, else the primary."""
        return self.read_database_url or self.require_database_url()

    def reads_replica(self) -> bool:
        """Whether the API reads its read models from another database than the primary."""
        return self.require_read_database_url() != self.require_database_url()

    def require_temporal_address(self) -> str:
        """The Temporal frontend address, which must be known by the time a process connects."""
        if not self.temporal_address:
            raise ConfigurationError("SAGALINE_TEMPORAL_ADDRESS is not set")
        return self.temporal_address

    def require_kafka_bootstrap(self) -> str:
        """The Kafka bootstrap servers, which must be known by the time a process connects."""
        if not self.kafka_bootstrap:
            raise ConfigurationError("SAGALINE_KAFKA_BOOTSTRAP is not set")
        return self.kafka_bootstrap

    def require_session_key(self) -> bytes:
        """The key customer sessions are signed with: set, and long enough to be a key."""
        if not self.session_key:
            raise ConfigurationError("SAGALINE_SESSION_KEY is not set")
        if len(self.session_key) < MIN_SESSION_KEY_LENGTH:
            raise ConfigurationError(
                f"SAGALINE_SESSION_KEY must be at least {MIN_SESSION_KEY_LENGTH} characters"
            )
        return self.session_key.encode()

    def snapshot_intervals(self) -> dict[str, int]:
        """SAGALINE_SNAPSHOT_EVERY as aggregate type -> events between snapshots."""
        intervals: dict[str, int] = {}
        for item in filter(None, (part.strip() for part in self.snapshot_every.split(","))):
            name, _, every = item.partition("=")
            if not name.strip() or not every.strip().isdigit() or int(every) < 1:
                raise ConfigurationError(
                    f"SAGALINE_SNAPSHOT_EVERY: {item!r} is not TYPE=N with N a positive number"
                )
            intervals[name.strip()] = int(every)
        return intervals

    def cors_origins(self) -> list[str]:
        """SAGALINE_API_CORS_ORIGINS as a list of origins, e.g. "https://app.example.com"."""
        origins = [part.strip().rstrip("/") for part in self.api_cors_origins.split(",")]
        for origin in filter(None, origins):
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ConfigurationError(
                    f"SAGALINE_API_CORS_ORIGINS: {origin!r} is not an http(s) origin or *"
                )
        return [origin for origin in origins if origin]

    @model_validator(mode="after")
    def _followers_have_a_queue_of_their_own(self) -> Settings:
        # One queue for both would hand a saga's tasks to the followers process and the
        # followers' to the worker, and each fails the tasks it has no code for.
        if self.followers_task_queue() == self.temporal_task_queue:
            raise ValueError(
                "SAGALINE_TEMPORAL_FOLLOWERS_TASK_QUEUE must differ from"
                f" SAGALINE_TEMPORAL_TASK_QUEUE ({self.temporal_task_queue!r})"
            )
        return self

    def followers_task_queue(self) -> str:
        """The followers' task queue: set, else the commands' one with "-followers" added."""
        return self.temporal_followers_task_queue or f"{self.temporal_task_queue}-followers"

    def process_metrics(self, role: WorkerRole) -> ProcessMetrics:
        """Where the worker or the followers process serves its metrics."""
        if role == "worker":
            return ProcessMetrics(
                self.metrics,
                self.worker_metrics_host,
                self.worker_metrics_port,
                self.worker_temporal_metrics_port,
                "SAGALINE_WORKER_METRICS_PORT",
                "SAGALINE_WORKER_TEMPORAL_METRICS_PORT",
            )
        return ProcessMetrics(
            self.metrics,
            self.worker_metrics_host,
            self.followers_metrics_port,
            self.followers_temporal_metrics_port,
            "SAGALINE_FOLLOWERS_METRICS_PORT",
            "SAGALINE_FOLLOWERS_TEMPORAL_METRICS_PORT",
        )

    def tracing_on(self) -> bool:
        """Whether this process records traces."""
        return self.tracing or bool(self.otlp_endpoint)

    def traces_dir(self) -> Path:
        """Where traces are written, one JSON-lines file per process role, without OTLP."""
        return self.data_dir / "traces"

    def temporal_ui_base(self) -> str:
        """Where operators open the Temporal Web UI."""
        if self.temporal_ui_url:
            return self.temporal_ui_url.rstrip("/")
        return f"http://127.0.0.1:{self.temporal_ui_port}"

    def temporal_workflow_url(self, workflow_id: str) -> str:
        """Where the Temporal Web UI shows a workflow of our namespace."""
        namespace = quote(self.temporal_namespace, safe="")
        workflow = quote(workflow_id, safe="")
        return f"{self.temporal_ui_base()}/namespaces/{namespace}/workflows/{workflow}"


WorkerRole = Literal["worker", "followers"]
"""The two processes that poll Temporal: commands and sagas, and the followers."""


@dataclass(frozen=True)
class ProcessMetrics:
    """Where one worker process serves its /metrics and the Temporal SDK's metrics."""

    enabled: bool
    host: str
    port: int
    """Our /metrics (0: not served)."""
    temporal_port: int
    """The SDK's own metrics (0: not served)."""
    port_variable: str
    temporal_port_variable: str

    def ports(self) -> list[tuple[int, str]]:
        """The ports served, each with its variable: none when metrics are off or a port is 0."""
        if not self.enabled:
            return []
        ports = [(self.port, self.port_variable), (self.temporal_port, self.temporal_port_variable)]
        return [(port, variable) for port, variable in ports if port]

    def serves(self) -> bool:
        """Whether our /metrics is served."""
        return self.enabled and bool(self.port)

    def serves_temporal(self) -> bool:
        """Whether the SDK's metrics are served."""
        return self.enabled and bool(self.temporal_port)


class ConfigurationError(RuntimeError):
    """A required setting is missing or invalid."""
