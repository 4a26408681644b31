from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from runtime.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_up_with_the_api_port_taken_exits_with_status_2_and_one_line_naming_the_variable(
    tmp_path: Path,
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        api_port = listener.getsockname()[1]
        env = {
            **os.environ,
            "SAGALINE_DATA_DIR": str(tmp_path),
            "SAGALINE_API_HOST": "127.0.0.1",
            "SAGALINE_API_PORT": str(api_port),
            # Every other port is free, so the API port is the one reported.
            "SAGALINE_POSTGRES_PORT": str(free_port()),
            "SAGALINE_TEMPORAL_PORT": str(free_port()),
            "SAGALINE_TEMPORAL_UI_PORT": str(free_port()),
            "SAGALINE_KAFKA_PORT": str(free_port()),
        }
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "runtime.cli", "up"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        elapsed = time.monotonic() - started

    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"sagaline: port {api_port} on 127.0.0.1 is already in use; "
        "set SAGALINE_API_PORT to use another port\n"
    )
    assert "Traceback" not in result.stdout
    assert elapsed < 15
