"""`make chaos`: the full chaos run (or `--quick`), its summary, exit status 1 on a violation.

.venv/bin/python -m tests.chaos.run [--quick] [--workers N] [--followers F] [--apis M]
    [--transfers T]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys

from tests.chaos.suite import QUICK, ChaosConfig, run_chaos


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="each fault once, fewer transfers")
    parser.add_argument("--workers", type=int, help="sagaline worker processes (2)")
    parser.add_argument("--followers", type=int, help="sagaline followers processes (2)")
    parser.add_argument("--apis", type=int, help="sagaline api processes (2)")
    parser.add_argument("--transfers", type=int, help="transfers to send (1500; quick 300)")
    parser.add_argument("--clients", type=int, help="concurrent GraphQL clients (12)")
    parser.add_argument("--seed", type=int, help="seed of the random transfers (12)")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and logs")
    args = parser.parse_args()
    config = QUICK if args.quick else ChaosConfig()
    changes = {
        name: getattr(args, name)
        for name in ("workers", "followers", "apis", "transfers", "clients", "seed")
        if getattr(args, name) is not None
    }
    config = dataclasses.replace(config, **changes)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    report = asyncio.run(run_chaos(config, keep_data=args.keep))
    sys.stdout.write(report.summary() + "\n")
    return 0 if report.held else 1


if __name__ == "__main__":
    sys.exit(main())
