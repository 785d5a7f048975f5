"""`python -m conformance URL [--suite NAME ...] [--schemas DIR]`: check a live node."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from conformance import DEFAULT_SCHEMAS, run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    parser.add_argument("url", help="the node's base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--suite", action="append", help="run only this suite (repeatable)")
    parser.add_argument("--schemas", type=Path, default=DEFAULT_SCHEMAS,
                        help="folder holding beacon-v2/ and vrs-1.3/ (default: ../shared)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    args = parser.parse_args(argv)
    try:
        report = asyncio.run(run(args.url, suites=args.suite, schemas=args.schemas,
                                 timeout_s=args.timeout))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
