"""Audit append microbenchmark: `python -m bench.audit_bench [--appends N]`.

Times sequential `AuditLog.append` calls (one caller, so one entry per batch: the worst
case for group commit) with fsync off and on, for the current log and for the previous
behaviour (the chain head read back from the end of the file and the `.head` record
replaced by write-then-rename on every batch), and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from node.privacy.audit import AuditLog


class RereadingAuditLog(AuditLog):
    """The log as it was before the head was kept in memory."""

    def _chain_head(self, fd: int) -> tuple[int, str]:
        self._tail = None
        return super()._chain_head(fd)

    def _write_head(self, seq: int, digest: str) -> None:
        tmp = self.head_path.with_name(f"{self.head_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"seq": seq, "hash": digest}))
        os.replace(tmp, self.head_path)


def time_appends(log: AuditLog, appends: int) -> float:
    """Mean seconds per append, after a short warm-up."""
    for i in range(10):
        _append(log, i)
    start = time.perf_counter()
    for i in range(appends):
        _append(log, i)
    return (time.perf_counter() - start) / appends


def _append(log: AuditLog, i: int) -> None:
    log.append(request_id=f"bench-{i}", requester="bench", datasets=["ds"],
               query={"referenceName": "22", "start": 16050074 + i, "alternateBases": "G"},
               granularity="count", counts={"ds": 12}, budget={"llr": 0.0})


def run(appends: int, workdir: Path) -> dict[str, float]:
    results: dict[str, float] = {}
    for fsync in (False, True):
        n = appends if not fsync else max(appends // 5, 20)
        for name, cls in (("before", RereadingAuditLog), ("after", AuditLog)):
            log = cls(workdir / f"{name}-{fsync}.jsonl", fsync=fsync)
            results[f"{name}_fsync_{'on' if fsync else 'off'}_us"] = time_appends(log, n) * 1e6
            log.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_bench", description=__doc__)
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--workdir", type=Path, help="directory on the disk to measure")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fednode-audit-", dir=args.workdir) as tmp:
        results = run(args.appends, Path(tmp))
    for mode in ("off", "on"):
        before, after = results[f"before_fsync_{mode}_us"], results[f"after_fsync_{mode}_us"]
        print(f"fsync {mode:3}: before {before:8.1f} us/append, after {after:8.1f} us/append,"
              f" ratio {before / after:5.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
