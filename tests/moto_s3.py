"""moto's S3 server on loopback, in a child process (in-process it deadlocks: TileDB holds
the GIL while it waits on the request the server thread would answer), with the TileDB
`vfs.s3.*` configuration that reaches it. The object-store tests start the same server."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator


@contextlib.contextmanager
def moto_s3(bucket: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(endpoint URL, TileDB configuration) of a running server holding one empty bucket."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # start-up of a child Python, not a measured margin
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.2)
        create = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")
        urllib.request.urlopen(create, timeout=10).close()
        yield endpoint, {
            "vfs.s3.endpoint_override": f"127.0.0.1:{port}",
            "vfs.s3.scheme": "http",
            "vfs.s3.use_virtual_addressing": "false",
            "vfs.s3.region": "us-east-1",
            "vfs.s3.aws_access_key_id": "test",
            "vfs.s3.aws_secret_access_key": "test",
        }
    finally:
        server.terminate()
        server.wait(timeout=10)
