"""Static checks of docker-compose.yml and the Dockerfile (no Docker engine needed).

The compose file is the production-like stack: official images for the infrastructure, the
app built from this repository, and every SAGALINE_* variable it sets must be one that
runtime.config.Settings actually reads, so a typo cannot silently fall back to a default.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
# The project's packages live at the repository root; make them importable even when the
# project is not installed into the environment running pytest.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"

INFRASTRUCTURE = ("postgres", "temporal", "temporal-ui", "kafka")
APP_COMMANDS = {
    "worker": "sagaline worker",
    "followers": "sagaline followers",
    "api": "sagaline api",
    "migrate": "sagaline migrate",
}
WORKERS_AND_API = ("worker", "followers", "api")
CONNECTION_SETTINGS = (
    "SAGALINE_DATABASE_URL",
    "SAGALINE_TEMPORAL_ADDRESS",
    "SAGALINE_KAFKA_BOOTSTRAP",
)
SEARCH_ATTRIBUTE_SERVICE = "temporal-setup"


@cache
def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), "docker-compose.yml must be a mapping"
    return loaded


def _services() -> dict[str, dict[str, Any]]:
    services = _compose().get("services")
    assert isinstance(services, dict), "docker-compose.yml has no services mapping"
    return services


def _service(name: str) -> dict[str, Any]:
    services = _services()
    assert name in services, f"service {name!r} missing from docker-compose.yml"
    service = services[name]
    assert isinstance(service, dict), f"service {name!r} is not a mapping"
    return service


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """The service's environment as a mapping, whichever of the two compose forms it uses."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (str(item).partition("=") for item in raw)
        return {key: value for key, _, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def _command(service: dict[str, Any]) -> str:
    raw = service.get("command", "")
    if isinstance(raw, list):
        return " ".join(str(part) for part in raw)
    return str(raw)


def _image_repository(service: dict[str, Any]) -> str:
    """`apache/kafka` for `apache/kafka:${KAFKA_VERSION:-4.0.0}` (tag and digest removed)."""
    image = str(service.get("image", ""))
    return image.split("@", 1)[0].split(":", 1)[0]


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency name -> condition (`service_started` for the short list form)."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {str(name): "service_started" for name in raw}
    return {
        str(name): str((spec or {}).get("condition", "service_started"))
        for name, spec in raw.items()
    }


def _app_services() -> dict[str, dict[str, Any]]:
    """Services built from this repository."""
    return {name: svc for name, svc in _services().items() if "build" in svc}


def _settings_env_names() -> set[str]:
    from runtime.config import Settings

    prefix = str(Settings.model_config.get("env_prefix", ""))
    assert prefix == "SAGALINE_"
    return {f"{prefix}{field}".upper() for field in Settings.model_fields}


def _cli_type_name(key: Any) -> str:
    """Temporal CLI spelling of a value type: KEYWORD_LIST -> KeywordList."""
    return "".join(part.capitalize() for part in key.indexed_value_type.name.split("_"))


@pytest.mark.parametrize(
    "name", [*INFRASTRUCTURE, *WORKERS_AND_API, "migrate", SEARCH_ATTRIBUTE_SERVICE]
)
def test_service_exists(name: str) -> None:
    assert name in _services(), f"service {name!r} missing from docker-compose.yml"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("postgres", "postgres"),
        ("temporal", "temporalio/auto-setup"),
        ("temporal-ui", "temporalio/ui"),
        ("kafka", "apache/kafka"),
        (SEARCH_ATTRIBUTE_SERVICE, "temporalio/admin-tools"),
    ],
)
def test_infrastructure_uses_official_image(name: str, expected: str) -> None:
    service = _service(name)
    assert "build" not in service, f"{name} must run an official image, not a local build"
    assert _image_repository(service) == expected


def test_temporal_persists_to_the_postgres_service() -> None:
    env = _environment(_service("temporal"))
    assert env.get("DB") == "postgres12"
    assert env.get("POSTGRES_SEEDS") == "postgres"
    assert env.get("POSTGRES_USER") and env.get("POSTGRES_PWD")
    assert _depends_on(_service("temporal")).get("postgres") == "service_healthy"


def test_postgres_has_healthcheck_and_volume() -> None:
    postgres = _service("postgres")
    assert "pg_isready" in " ".join(map(str, postgres.get("healthcheck", {}).get("test", [])))
    assert any(":/var/lib/postgresql/data" in str(v) for v in postgres.get("volumes", []))


def test_temporal_ui_points_at_temporal() -> None:
    ui = _service("temporal-ui")
    assert _environment(ui).get("TEMPORAL_ADDRESS") == "temporal:7233"
    assert "8233:8080" in [str(port) for port in ui.get("ports", [])]


def test_kafka_runs_in_kraft_mode() -> None:
    env = _environment(_service("kafka"))
    roles = {role.strip() for role in env.get("KAFKA_PROCESS_ROLES", "").split(",")}
    assert {"broker", "controller"} <= roles
    assert env.get("KAFKA_CONTROLLER_QUORUM_VOTERS")
    assert env.get("KAFKA_CONTROLLER_LISTENER_NAMES")
    assert "PLAINTEXT://kafka:9092" in env.get("KAFKA_ADVERTISED_LISTENERS", "")
    assert env.get("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR") == "1"
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert not any("zookeeper" in name for name in _services())


@pytest.mark.parametrize(("name", "command"), sorted(APP_COMMANDS.items()))
def test_app_service_is_built_from_repo_and_runs_sagaline(name: str, command: str) -> None:
    service = _service(name)
    build = service.get("build")
    assert build is not None, f"{name} must be built from the repository"
    context = build if isinstance(build, str) else build.get("context", ".")
    assert Path(REPO_ROOT, context).resolve() == REPO_ROOT
    assert _command(service) == command


def test_every_sagaline_variable_is_a_settings_field() -> None:
    known = _settings_env_names()
    seen: set[str] = set()
    for name, service in _app_services().items():
        for var in _environment(service):
            if var.startswith("SAGALINE_"):
                seen.add(var)
                assert var in known, f"{name}: {var} is not a field of runtime.config.Settings"
    assert seen, "no SAGALINE_* variables found in the app services"


def test_every_app_service_is_checked() -> None:
    assert set(APP_COMMANDS) <= set(_app_services())


@pytest.mark.parametrize("name", WORKERS_AND_API)
@pytest.mark.parametrize("var", CONNECTION_SETTINGS)
def test_worker_and_api_get_connection_settings(name: str, var: str) -> None:
    assert _environment(_service(name)).get(var), f"{name} does not set {var}"


def test_database_url_targets_the_postgres_service() -> None:
    url = _environment(_service("worker"))["SAGALINE_DATABASE_URL"]
    assert re.fullmatch(r"postgresql://[^:@/]+:[^@/]+@postgres:5432/\S+", url), url


@pytest.mark.parametrize("name", WORKERS_AND_API)
def test_real_kafka_uses_idempotent_producer(name: str) -> None:
    env = _environment(_service(name))
    assert env.get("SAGALINE_KAFKA_IDEMPOTENT_PRODUCER", "").lower() == "true"


def _host_ports(published: str, container_port: str) -> list[int]:
    """The host ports of a `HOST[-HOST]:CONTAINER` mapping onto `container_port` (else none)."""
    match = re.fullmatch(r"(\d+)(?:-(\d+))?:(\d+)", published)
    if match is None or match.group(3) != container_port:
        return []
    first, last = int(match.group(1)), int(match.group(2) or match.group(1))
    return list(range(first, last + 1))


def _replicas(service: dict[str, Any]) -> int:
    return int((service.get("deploy") or {}).get("replicas", 1))


def test_api_listens_on_all_interfaces_and_is_published() -> None:
    api = _service("api")
    env = _environment(api)
    assert env.get("SAGALINE_API_HOST") == "0.0.0.0"
    port = env.get("SAGALINE_API_PORT", "8000")
    host_ports = [p for mapping in api.get("ports", []) for p in _host_ports(str(mapping), port)]
    assert port and int(port) in host_ports, "the API's own port is not published as itself"
    assert env.get("SAGALINE_TEMPORAL_UI_URL")
    assert env.get("SAGALINE_API_TOKENS")


@pytest.mark.parametrize("name", WORKERS_AND_API)
def test_worker_followers_and_api_run_two_replicas(name: str) -> None:
    service = _service(name)
    assert _replicas(service) == 2
    assert "container_name" not in service, "a fixed container name allows one replica only"


def test_each_api_replica_gets_a_host_port_of_its_own() -> None:
    api = _service("api")
    port = _environment(api).get("SAGALINE_API_PORT", "8000")
    host_ports = [p for mapping in api.get("ports", []) for p in _host_ports(str(mapping), port)]
    assert len(set(host_ports)) >= _replicas(api), "replicas would compete for one host port"


def test_api_replicas_share_one_session_key() -> None:
    # A session issued by one replica must be accepted by the other: one key for the service.
    assert _environment(_service("api")).get("SAGALINE_SESSION_KEY")


@pytest.mark.parametrize("name", WORKERS_AND_API)
def test_app_waits_for_migrations_and_search_attributes(name: str) -> None:
    deps = _depends_on(_service(name))
    assert deps.get("migrate") == "service_completed_successfully"
    assert deps.get(SEARCH_ATTRIBUTE_SERVICE) == "service_completed_successfully"


@pytest.mark.parametrize("name", ["worker", "followers"])
def test_workers_depend_on_temporal_and_kafka(name: str) -> None:
    deps = _depends_on(_service(name))
    assert "temporal" in deps
    assert "kafka" in deps


def test_the_followers_and_the_sagas_have_task_queues_of_their_own() -> None:
    from runtime.config import Settings

    for name in WORKERS_AND_API:
        env = _environment(_service(name))
        settings = Settings(
            temporal_task_queue=env["SAGALINE_TEMPORAL_TASK_QUEUE"],
            temporal_followers_task_queue=env["SAGALINE_TEMPORAL_FOLLOWERS_TASK_QUEUE"],
        )
        assert settings.followers_task_queue() != settings.temporal_task_queue


def test_migrate_waits_for_healthy_postgres_and_runs_once() -> None:
    migrate = _service("migrate")
    assert _depends_on(migrate).get("postgres") == "service_healthy"
    assert str(migrate.get("restart", "no")) == "no"


def test_search_attributes_match_the_workflows() -> None:
    from workflows import search_attributes

    command = _command(_service(SEARCH_ATTRIBUTE_SERVICE))
    created = dict(re.findall(r"--name\s+(\S+)\s+--type\s+(\S+)", command))
    expected = {key.name: _cli_type_name(key) for key in search_attributes.ALL}
    assert created == expected
    assert "search-attribute create" in command
    assert "temporal:7233" in command


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions: list[tuple[str, str]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, args = stripped.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def _exec_form(args: str) -> list[str]:
    if args.startswith("["):
        parsed = json.loads(args)
        assert isinstance(parsed, list)
        return [str(part) for part in parsed]
    return shlex.split(args)


def _last(instruction: str) -> list[str]:
    found = [args for keyword, args in _dockerfile_instructions() if keyword == instruction]
    return _exec_form(found[-1]) if found else []


def test_dockerfile_runs_sagaline() -> None:
    argv = _last("ENTRYPOINT") + _last("CMD")
    assert argv, "Dockerfile has neither CMD nor ENTRYPOINT"
    assert argv[0] == "sagaline"
    assert argv[:2] == ["sagaline", "api"] or _last("ENTRYPOINT") == ["sagaline"]


def test_dockerfile_base_user_and_install() -> None:
    instructions = _dockerfile_instructions()
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert froms and froms[-1].split()[0] == "python:3.11-slim"
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1] not in {"root", "0", "0:0"}
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert re.search(r"pip install --no-cache-dir (--no-deps )?-e \.", runs)
    assert ("EXPOSE", "8000") in instructions


def test_dockerignore_keeps_migrations_and_drops_local_state() -> None:
    patterns = {
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".sagaline", ".git"} <= patterns
    assert not patterns & {"migrations", "migrations/", "runtime", "runtime/", "*"}


def test_the_image_carries_graphiqls_assets_from_the_npm_registry() -> None:
    instructions = _dockerfile_instructions()
    froms = [args.split()[0] for keyword, args in instructions if keyword == "FROM"]
    copies = [args for keyword, args in instructions if keyword == "COPY"]
    assert "node:20-slim" in froms
    assert any(
        args.startswith("--from=graphiql ") and args.endswith("/app/build/graphiql")
        for args in copies
    )
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert "-c requirements.lock" in runs, "the image must pin the strawberry the page names"


OBSERVABILITY = {
    "prometheus": "prom/prometheus",
    "grafana": "grafana/grafana",
    "otel-collector": "otel/opentelemetry-collector",
    "jaeger": "jaegertracing/all-in-one",
}


@pytest.mark.parametrize(("name", "expected"), sorted(OBSERVABILITY.items()))
def test_observability_services_run_official_images(name: str, expected: str) -> None:
    service = _service(name)
    assert "build" not in service
    assert _image_repository(service) == expected


def _mounted(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repository path of the service's bind mounts from the repo."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if source.startswith("./"):
            mounts[rest.split(":", 1)[0]] = REPO_ROOT / source
    return mounts


def test_prometheus_scrapes_the_api_the_workers_the_followers_and_the_temporal_sdk() -> None:
    config_path = _mounted(_service("prometheus"))["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    targets = {
        (sd["names"][0], sd["port"])
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
    }
    from runtime.config import Settings

    fields = Settings.model_fields
    assert targets == {
        ("api", 8000),
        ("worker", fields["worker_metrics_port"].default),
        ("worker", fields["worker_temporal_metrics_port"].default),
        ("followers", fields["followers_metrics_port"].default),
        ("followers", fields["followers_temporal_metrics_port"].default),
    }
    for name in ("worker", "followers"):
        assert _environment(_service(name)).get("SAGALINE_WORKER_METRICS_HOST") == "0.0.0.0"


def test_grafana_is_provisioned_with_prometheus_jaeger_and_the_dashboard() -> None:
    from tests.dashboard_queries import DASHBOARD, dashboard, queries

    mounts = _mounted(_service("grafana"))
    provisioning = mounts["/etc/grafana/provisioning"]
    sources = yaml.safe_load(
        (provisioning / "datasources" / "datasources.yml").read_text(encoding="utf-8")
    )
    by_type = {source["type"]: source for source in sources["datasources"]}
    assert by_type["prometheus"]["url"] == "http://prometheus:9090"
    assert by_type["jaeger"]["url"] == "http://jaeger:16686"
    providers = yaml.safe_load(
        (provisioning / "dashboards" / "dashboards.yml").read_text(encoding="utf-8")
    )
    path = providers["providers"][0]["options"]["path"]
    assert mounts[path] == DASHBOARD.parent
    assert DASHBOARD.is_file()
    panels = {panel["title"] for panel in dashboard()["panels"]}
    for topic in ("per second", "latency", "Saga outcomes", "lag", "operator", "Dead letters"):
        assert any(topic in title for title in panels), topic
    uids = {
        target["datasource"]["uid"]
        for panel in dashboard()["panels"]
        for target in panel["targets"]
    }
    assert uids == {by_type["prometheus"]["uid"]}
    assert all(query.strip() for query in queries())


def test_the_collector_sends_traces_to_jaeger() -> None:
    collector = _service("otel-collector")
    config_path = next(iter(_mounted(collector).values()))
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    assert "otlp" in config["receivers"]
    exporter = config["exporters"]["otlp/jaeger"]
    assert exporter["endpoint"] == "jaeger:4317"
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["otlp/jaeger"]
    assert _environment(_service("jaeger")).get("COLLECTOR_OTLP_ENABLED") == "true"
