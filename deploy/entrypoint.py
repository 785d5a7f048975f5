"""Container entrypoint: make the node home on first start, ingest the configured files,
then become `fednode serve` (exec, so signals reach the server directly).

Environment:
  FEDNODE_HOME            node home (default /data/node; a volume)
  FEDNODE_DATASET         dataset id for FEDNODE_INGEST_FILES (default "demo")
  FEDNODE_INGEST_FILES    whitespace-separated VCF/BCF paths ingested once, on first start
  FEDNODE_AGGREGATOR      a PEERS.yaml: serve Beacon v2 over that federation instead
                          (`fednode serve --aggregator`; the home keeps its budgets, audit)
  FEDNODE_SERVER__HOST/PORT, FEDNODE_PEER__HOST/PORT, ...: node settings (node/config.py)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _fednode(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "node", *args], check=True)


def main() -> None:
    home = Path(os.environ.get("FEDNODE_HOME", "/data/node"))
    if not (home / "fednode.toml").is_file():
        _fednode("init", str(home))
        files = os.environ.get("FEDNODE_INGEST_FILES", "").split()
        if files:
            dataset = os.environ.get("FEDNODE_DATASET", "demo")
            _fednode("ingest", str(home), "--dataset", dataset, "--threads", "1", *files)
    serve = [sys.executable, "-m", "node", "serve", str(home)]
    peers = os.environ.get("FEDNODE_AGGREGATOR")
    if peers:
        serve += ["--aggregator", peers]
    os.execv(sys.executable, serve)


if __name__ == "__main__":
    main()
