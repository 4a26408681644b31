from __future__ import annotations

from pathlib import Path

import pytest

from runtime.embedded.temporal import EmbeddedTemporal


def server(tmp_path: Path) -> EmbeddedTemporal:
    return EmbeddedTemporal(tmp_path, port=7233, ui_port=8233)


def test_dev_server_runs_its_go_runtime_on_one_processor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOMAXPROCS", raising=False)
    monkeypatch.setenv("SOME_VARIABLE", "kept")
    environment = server(tmp_path).environment()
    assert environment["GOMAXPROCS"] == "1"
    assert environment["SOME_VARIABLE"] == "kept"


def test_an_explicit_gomaxprocs_in_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOMAXPROCS", "2")
    assert server(tmp_path).environment()["GOMAXPROCS"] == "2"


def test_dev_server_keeps_its_database_file_and_pragmas(tmp_path: Path) -> None:
    command = server(tmp_path).command()
    assert command[command.index("--db-filename") + 1] == str(tmp_path / "temporal.db")
    pragmas = [command[i + 1] for i, arg in enumerate(command) if arg == "--sqlite-pragma"]
    assert pragmas == ["journal_mode=wal", "synchronous=full"]
