"""What a long-running process does to the garbage collector before it serves."""

from __future__ import annotations

import subprocess
import sys

from runtime.startup import YOUNG_THRESHOLD

PROBE = """
import gc
from runtime.startup import freeze_startup_objects
before = gc.get_threshold()
freeze_startup_objects()
after = gc.get_threshold()
print(gc.get_freeze_count() > 0, after[0], after[1:] == before[1:])
"""


def test_start_up_objects_are_frozen_and_young_passes_wait_for_the_threshold() -> None:
    # In a process of its own: freezing the test runner's objects would outlive the test.
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    assert probe.stdout.split() == ["True", str(YOUNG_THRESHOLD), "True"]
    assert YOUNG_THRESHOLD > 700, "above CPython's default, or the setting does nothing"
