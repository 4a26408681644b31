"""`sagaline up`: the whole stack on one machine, embedded components where none is configured."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runtime.config import Settings, WorkerRole
from runtime.embedded.process import (
    ChildProcess,
    ComponentStartError,
    describe_exit,
    http_answers,
    log_tail,
)
from runtime.launcher import (
    READY_POLL_SECONDS,
    UP_BANNER,
    Deadline,
    sagaline_process,
    start_together,
)
from runtime.ports import ensure_port_free
from runtime.supervision import RestartPolicy, SupervisedPart, supervise_all

if TYPE_CHECKING:
    from runtime.embedded.postgres import EmbeddedPostgres

logger = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
CHILD_GRACE = 30.0
WORKER_ROLES: tuple[WorkerRole, ...] = ("worker", "followers")
"""The processes `up` runs that poll Temporal: the commands and sagas, and the followers."""


class Watched(Protocol):
    """A running part of the stack, restarted when it exits unexpectedly."""

    @property
    def log_path(self) -> Path: ...

    @property
    def returncode(self) -> int | None: ...


class Embedded(Protocol):
    """An embedded component: started (until ready) and stopped in place."""

    async def start(self, ready_within: float = ...) -> None: ...

    async def stop(self, grace: float = ...) -> None: ...


@dataclass
class Endpoints:
    """Where each part of the running stack is reached."""

    data_dir: Path
    database_url: str = ""
    temporal_address: str = ""
    temporal_ui_url: str = ""
    kafka_bootstrap: str = ""
    graphql_url: str = ""
    metrics_urls: dict[str, str] = field(default_factory=dict)
    api_tokens: str = ""
    generated_tokens: dict[str, str] = field(default_factory=dict)
    session_key: str = ""
    watched: dict[str, Watched] = field(default_factory=dict)
    restarts: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)


def up(settings: Settings) -> int:
    """Run the stack until Ctrl-C or SIGTERM (status 0), or until a part crashes too often to
    keep restarting it (status 1)."""
    check_ports(settings)
    return asyncio.run(_run(settings))


def check_ports(settings: Settings) -> None:
    """Fail with PortInUse before starting anything if a port `up` would bind is taken."""
    if not settings.database_url:
        ensure_port_free(LOCALHOST, settings.postgres_port, "SAGALINE_POSTGRES_PORT")
    if not settings.temporal_address:
        ensure_port_free(LOCALHOST, settings.temporal_port, "SAGALINE_TEMPORAL_PORT")
        ensure_port_free(LOCALHOST, settings.temporal_ui_port, "SAGALINE_TEMPORAL_UI_PORT")
    if not settings.kafka_bootstrap:
        ensure_port_free(LOCALHOST, settings.kafka_port, "SAGALINE_KAFKA_PORT")
    ensure_port_free(settings.api_host, settings.api_port, "SAGALINE_API_PORT")
    for role in WORKER_ROLES:
        served = settings.process_metrics(role)
        for port, variable in served.ports():
            ensure_port_free(served.host, port, variable)


async def _run(settings: Settings) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    stopping = False

    def on_signal(signum: signal.Signals) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        _say(f"\n{signum.name} received; stopping")
        task.cancel()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        async with contextlib.AsyncExitStack() as running:
            try:
                endpoints = await _start(settings, running)
                _say(_summary(endpoints))
                return await _supervise(endpoints, RestartPolicy.from_settings(settings))
            except asyncio.CancelledError:
                if not stopping:
                    raise
                task.uncancel()
                return 0
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        _say("stopped")


async def _start(settings: Settings, running: contextlib.AsyncExitStack) -> Endpoints:
    """Start every part within one bound; `running` stops them in reverse.

    Postgres (then the migrations), Temporal and the broker need nothing from each other, so
    they start together; the worker, the followers and the API need all three.
    """
    deadline = Deadline(settings.startup_timeout_seconds)
    data_dir = settings.data_dir.absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    endpoints = Endpoints(data_dir=data_dir)
    starts: dict[str, Coroutine[Any, Any, None]] = {}

    postgres = None
    if settings.database_url:
        endpoints.database_url = settings.database_url
    else:
        from runtime.embedded.postgres import EmbeddedPostgres

        postgres = EmbeddedPostgres(data_dir, settings.postgres_port)
        _say(f"starting PostgreSQL on port {postgres.port}")
        running.push_async_callback(_stopping, "PostgreSQL", postgres.stop)
        endpoints.database_url = postgres.url
        endpoints.watched["PostgreSQL"] = postgres
        # The cluster stays in the data dir: a restarted server recovers it.
        endpoints.restarts["PostgreSQL"] = _restarting(postgres, settings)
    starts["PostgreSQL"] = _database(endpoints.database_url, postgres, deadline)

    if settings.temporal_address:
        endpoints.temporal_address = settings.temporal_address
        endpoints.temporal_ui_url = settings.temporal_ui_base()
    else:
        from runtime.embedded.temporal import EmbeddedTemporal

        temporal = EmbeddedTemporal(
            data_dir,
            settings.temporal_port,
            settings.temporal_ui_port,
            namespace=settings.temporal_namespace,
        )
        _say(f"starting Temporal on port {temporal.port}")
        running.push_async_callback(_stopping, "Temporal", temporal.stop)
        endpoints.temporal_address = temporal.address
        endpoints.temporal_ui_url = temporal.ui_url or ""
        endpoints.watched["Temporal"] = temporal
        endpoints.restarts["Temporal"] = _restarting(temporal, settings)
        starts["Temporal"] = _ready("Temporal", temporal.start(deadline.remaining()), deadline)

    if settings.kafka_bootstrap:
        endpoints.kafka_bootstrap = settings.kafka_bootstrap
    else:
        from runtime.embedded.broker import EmbeddedBroker

        broker = EmbeddedBroker(data_dir, settings.kafka_port)
        _say(f"starting the Kafka broker on port {broker.port}")
        running.push_async_callback(_stopping, "Kafka broker", broker.stop)
        endpoints.kafka_bootstrap = broker.bootstrap
        endpoints.watched["Kafka broker"] = broker
        # Memory-only: a restarted broker has lost its topics (the store is the record).
        endpoints.restarts["Kafka broker"] = _restarting(broker, settings)
        starts["Kafka broker"] = _ready(
            "Kafka broker", broker.start(deadline.remaining()), deadline
        )

    await start_together(starts)

    if settings.api_tokens:
        endpoints.api_tokens = settings.api_tokens
    else:
        endpoints.generated_tokens = development_tokens(data_dir)
        endpoints.api_tokens = ",".join(
            f"{token}:{role}" for role, token in endpoints.generated_tokens.items()
        )
    endpoints.session_key = settings.session_key or development_session_key(data_dir)
    env = _child_env(settings, endpoints)
    api_host = _reachable_host(settings.api_host)
    endpoints.graphql_url = f"http://{api_host}:{settings.api_port}/graphql"
    endpoints.metrics_urls = _metrics_urls(settings, api_host)
    children: dict[str, ChildProcess] = {}
    for role in (*WORKER_ROLES, "api"):
        child = sagaline_process(role, data_dir / "logs" / f"{role}.log", env)
        _say(f"starting the {role}")
        running.push_async_callback(_stopping, role, functools.partial(child.stop, CHILD_GRACE))
        child.start()
        endpoints.watched[role] = child
        children[role] = child
    api = children["api"]

    async def api_answers() -> bool:
        return await http_answers(api_host, settings.api_port, "/graphql")

    async def restart(role: WorkerRole) -> None:
        await children[role].stop(CHILD_GRACE)
        children[role].start()

    async def restart_api() -> None:
        await api.stop(CHILD_GRACE)
        api.start()
        await api.wait_ready(
            api_answers, within=settings.startup_timeout_seconds, interval=READY_POLL_SECONDS
        )

    endpoints.restarts.update(
        {role: functools.partial(restart, role) for role in WORKER_ROLES}, api=restart_api
    )

    async def api_answers_while_all_run() -> bool:
        _raise_if_any_died(endpoints)
        return await api_answers()

    await api.wait_ready(
        api_answers_while_all_run, within=deadline.remaining(), interval=READY_POLL_SECONDS
    )
    _say(f"the api answers after {deadline.elapsed():.1f}s")
    return endpoints


def _metrics_urls(settings: Settings, api_host: str) -> dict[str, str]:
    """Where `up`'s parts serve their metrics, and the API its status page."""
    api = f"http://{api_host}:{settings.api_port}"
    urls = {"Status page": f"{api}/status"}
    if not settings.metrics:
        return urls
    urls["API metrics"] = f"{api}/metrics"
    for role in WORKER_ROLES:
        label = role.capitalize()
        served = settings.process_metrics(role)
        host = _reachable_host(served.host)
        if served.serves():
            urls[f"{label} metrics"] = f"http://{host}:{served.port}/metrics"
        if served.serves_temporal():
            urls[f"{label} Temporal SDK metrics"] = f"http://{host}:{served.temporal_port}/metrics"
    return urls


def _restarting(component: Embedded, settings: Settings) -> Callable[[], Awaitable[None]]:
    """Restarting an embedded component in place, on its port and in its data dir."""

    async def restart() -> None:
        await component.stop()
        await component.start(settings.startup_timeout_seconds)

    return restart


async def _database(url: str, postgres: EmbeddedPostgres | None, deadline: Deadline) -> None:
    """Start the embedded Postgres, if any, then apply the migrations."""
    from runtime.migrate import migrate

    if postgres is not None:
        await _ready("PostgreSQL", postgres.start(deadline.remaining()), deadline)
    _say("applying migrations")
    await asyncio.to_thread(migrate, url)


async def _ready(name: str, start: Awaitable[None], deadline: Deadline) -> None:
    await start
    _say(f"{name} ready after {deadline.elapsed():.1f}s")


async def _supervise(endpoints: Endpoints, policy: RestartPolicy) -> int:
    """Restart each part that exits, reporting it; return status 1 once one crashed too often."""
    parts = [
        SupervisedPart(name, _exit_status(part), part.log_path, endpoints.restarts[name])
        for name, part in endpoints.watched.items()
    ]
    cause = await supervise_all(parts, policy, _say)
    sys.stderr.write(f"sagaline: {cause}; stopping the stack\n")
    return 1


def _exit_status(part: Watched) -> Callable[[], int | None]:
    return lambda: part.returncode


def _raise_if_any_died(endpoints: Endpoints) -> None:
    for name, part in endpoints.watched.items():
        if part.returncode is not None:
            raise ComponentStartError(
                f"{name} {describe_exit(part.returncode)} while the stack was starting; "
                f"log {part.log_path}:\n{log_tail(part.log_path)}"
            )


def _child_env(settings: Settings, endpoints: Endpoints) -> dict[str, str]:
    """The worker's, the followers' and the API's environment: ours, plus where each
    component runs."""
    project_root = str(Path(__file__).resolve().parent.parent)
    python_path = os.pathsep.join(p for p in (project_root, os.environ.get("PYTHONPATH")) if p)
    return {
        **os.environ,
        "PYTHONPATH": python_path,
        "PYTHONUNBUFFERED": "1",
        "SAGALINE_DATA_DIR": str(endpoints.data_dir),
        "SAGALINE_DATABASE_URL": endpoints.database_url,
        "SAGALINE_TEMPORAL_ADDRESS": endpoints.temporal_address,
        "SAGALINE_TEMPORAL_UI_URL": endpoints.temporal_ui_url,
        "SAGALINE_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        "SAGALINE_API_HOST": settings.api_host,
        "SAGALINE_API_PORT": str(settings.api_port),
        "SAGALINE_API_TOKENS": endpoints.api_tokens,
        "SAGALINE_SESSION_KEY": endpoints.session_key,
    }


def _summary(endpoints: Endpoints) -> str:
    rows = [
        ("GraphQL", endpoints.graphql_url),
        *endpoints.metrics_urls.items(),
        ("Temporal UI", endpoints.temporal_ui_url or "(none)"),
        ("Temporal", endpoints.temporal_address),
        ("Kafka", endpoints.kafka_bootstrap),
        ("PostgreSQL", endpoints.database_url),
        ("Data dir", str(endpoints.data_dir)),
        ("Logs", str(endpoints.data_dir / "logs")),
    ]
    rows += [
        (f"{role.capitalize()} token", token) for role, token in endpoints.generated_tokens.items()
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"  {label:<{width}}  {value}" for label, value in rows]
    return "\n".join(["", f"{UP_BANNER} (Ctrl-C stops it)", *lines, ""])


def development_tokens(data_dir: Path) -> dict[str, str]:
    """A client and an operator token for local use, kept in the data dir across restarts."""
    path = data_dir / "dev-tokens"
    if not path.exists():
        path.write_text(
            "".join(f"{role}={secrets.token_urlsafe(24)}\n" for role in ("client", "operator"))
        )
        path.chmod(0o600)
    pairs = (line.partition("=") for line in path.read_text().splitlines() if "=" in line)
    return {role: token for role, _, token in pairs}


def development_session_key(data_dir: Path) -> str:
    """A key for signing customer sessions locally, kept in the data dir across restarts."""
    path = data_dir / "dev-session-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def _reachable_host(host: str) -> str:
    """Where a local client connects to a server bound to `host`."""
    return LOCALHOST if host in ("", "0.0.0.0", "::") else host


async def _stopping(name: str, stop: Callable[[], Awaitable[None]]) -> None:
    _say(f"stopping {name}")
    try:
        await stop()
    except Exception:
        logger.exception("stopping %s failed", name)


def _say(message: str) -> None:
    """User-facing progress on stdout (this module is part of the CLI)."""
    print(message, flush=True)
