from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from runtime.launcher import PROJECT_ROOT, StackPorts, UpProcess, sagaline_command
from tests.e2e.conftest import run_up


def test_up_with_the_api_port_taken_exits_with_status_2_and_one_line_naming_the_variable(
    tmp_path: Path,
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        api_port = listener.getsockname()[1]
        # Every other port is free, so the API port is the one reported.
        free = StackPorts.free()
        ports = StackPorts(api_port, free.postgres, free.temporal, free.temporal_ui, free.kafka)
        result, elapsed = run_up(UpProcess(tmp_path, ports))

    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"sagaline: port {api_port} on 127.0.0.1 is already in use; "
        "set SAGALINE_API_PORT to use another port\n"
    )
    assert "Traceback" not in result.stdout
    # At once, not after the startup bound: a loaded machine takes seconds just to import.
    assert elapsed < 60


def test_up_past_its_startup_bound_exits_with_status_1_naming_the_late_part_and_its_log() -> None:
    # Under /tmp: embedded Postgres runs as an unprivileged account that must reach its data.
    data_dir = Path(tempfile.mkdtemp(prefix="sagaline-e2e-late-"))
    try:
        result, elapsed = run_up(UpProcess(data_dir, StackPorts.free(), startup_within=0.5))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    [reported] = [line for line in result.stderr.splitlines() if line.startswith("sagaline: ")]
    match = re.fullmatch(
        r"sagaline: (postgres|temporal|tansu|api) was not ready after \d+s; log (\S+):", reported
    )
    assert match is not None, result.stderr
    part, log = match.groups()
    assert Path(log).name == f"{part}.log"
    # The log's last lines follow; `up` stopped what it had started rather than hang on.
    assert "--- " in result.stderr
    assert result.stdout.splitlines()[-1] == "stopped"
    assert elapsed < 120


@pytest.mark.parametrize("role", ["worker", "followers"])
@pytest.mark.parametrize(
    ("taken", "other"), [("METRICS", "TEMPORAL_METRICS"), ("TEMPORAL_METRICS", "METRICS")]
)
def test_a_worker_process_with_a_metrics_port_taken_exits_with_status_2_naming_the_variable(
    role: str, taken: str, other: str
) -> None:
    taken, other = (f"SAGALINE_{role.upper()}_{setting}_PORT" for setting in (taken, other))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        environment = {
            **os.environ,
            taken: str(port),
            other: "0",  # off, so the taken port is the one reported
            "SAGALINE_WORKER_METRICS_HOST": "127.0.0.1",
            # Nothing listens on these: the process must stop before it connects anywhere.
            "SAGALINE_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/none",
            "SAGALINE_TEMPORAL_ADDRESS": "127.0.0.1:1",
            "SAGALINE_KAFKA_BOOTSTRAP": "127.0.0.1:1",
            "PYTHONPATH": str(PROJECT_ROOT),
        }
        result = subprocess.run(
            sagaline_command(role),
            env=environment,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"sagaline: port {port} on 127.0.0.1 is already in use; set {taken} to use another port\n"
    )
    assert result.stdout == ""
