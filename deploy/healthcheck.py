"""Container health check: exit 0 when the node's /health answers "ok", else 1.

Standard library only, a 3 s timeout; the port is FEDNODE_SERVER__PORT (default 8080).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request


def main() -> int:
    port = int(os.environ.get("FEDNODE_SERVER__PORT", "8080"))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as reply:
            ok = reply.status == 200 and json.load(reply).get("status") == "ok"
    except (OSError, ValueError):
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
