"""What every long-running process does once it has started, before it serves."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Exempt what start-up built from every later garbage collection.

    Start-up builds modules, the schema and workflow definitions: well over 100,000 tracked
    objects once the API or the worker is imported. The collector's full pass walks every
    one of them and costs far more than the query or activity it interrupts, and requests
    that wait on Postgres keep their objects alive across young collections, so full passes
    come often. Frozen objects are never walked again; garbage found now is freed first.
    """
    gc.collect()
    gc.freeze()
