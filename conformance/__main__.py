"""`python -m conformance URL [--suite NAME ...] [--schemas DIR]`: check a live node."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from conformance import DEFAULT_SCHEMAS, run
from conformance.htsget import parse_region


def _region(text: str) -> str:
    try:
        parse_region(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    parser.add_argument("url", help="the node's base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--suite", action="append", help="run only this suite (repeatable)")
    parser.add_argument("--schemas", type=Path, default=DEFAULT_SCHEMAS,
                        help="folder holding beacon-v2/ and vrs-1.3/ (default: ../shared)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--htsget-reads", metavar="ID",
                        help="reads id (default: the compliance suite's htsnexus_test_NA12878)")
    parser.add_argument("--htsget-variants", metavar="ID",
                        help="variants id (default: spec-v4.3)")
    parser.add_argument("--htsget-region", metavar="NAME:START-END", type=_region,
                        help="0-based half-open region with reads (default: 11:5000000-5050000)")
    args = parser.parse_args(argv)
    targets = {key: value for key, value in (("htsget-reads", args.htsget_reads),
               ("htsget-variants", args.htsget_variants), ("htsget-region", args.htsget_region))
               if value is not None}  # fmt: skip
    try:
        report = asyncio.run(run(args.url, suites=args.suite, schemas=args.schemas,
                                 timeout_s=args.timeout, targets=targets))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
