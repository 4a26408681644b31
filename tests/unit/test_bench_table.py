"""The summary table `make bench` ends with: one row per figure, failures shown as such."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

TABLE = Path(__file__).resolve().parents[2] / "bench" / "_table.py"


@pytest.fixture(scope="module")
def table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_table", TABLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_figure_gets_a_row_with_its_goal_and_a_failed_script_says_so(
    table: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    relay = {"bench": "relay_throughput", "value": 9000.4, "unit": "events/s",
             "baseline": 11000.0, "ratio": 0.818, "goal": 0.8, "goal_met": True}  # fmt: skip
    latency = {
        "bench": "relay_latency", "value": 60.2, "unit": "ms", "baseline": 47.0, "ratio": 1.28,
        "goal": 100, "goal_text": "p99 ≤ 100 ms", "goal_met": False,
        "figures": [{"name": "vs pgbench", "value": 1.0, "baseline": 2.0, "ratio": 0.5,
                     "goal": 0.8, "goal_met": False}],
    }  # fmt: skip
    (tmp_path / "a.out").write_text("warming up\n" + json.dumps(relay) + "\n")
    (tmp_path / "b.out").write_text(json.dumps(latency) + "\n")
    (tmp_path / "c.out").write_text("Traceback (most recent call last):\n")

    assert table.main([str(tmp_path / name) for name in ("a.out", "b.out", "c.out")]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["bench", "value", "baseline", "ratio", "goal", "met?"]
    assert lines[2].split() == [
        "relay_throughput", "9000", "events/s", "11000", "events/s", "0.818", "ratio", "≥",
        "0.8", "yes",
    ]  # fmt: skip
    assert lines[3].split()[-4:] == ["≤", "100", "ms", "NO"]
    assert lines[4].split()[:1] == ["vs"] and lines[4].split()[-1] == "NO"
    assert lines[5].split() == ["c", "failed:", "no", "JSON", "result"]
