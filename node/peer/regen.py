"""Regenerate the peer API stubs in `node/peer/_pb` from `proto/fednode/v1/*.proto`.

    python -m node.peer.regen          # rewrite the committed stubs
    python -m node.peer.regen --check  # exit 1 when the committed stubs have drifted

The output depends only on the .proto files and the pinned grpcio-tools, so CI
regenerates and compares byte for byte. grpc_tools emits absolute imports
(`from fednode.v1 import peer_pb2`); they are rewritten to the package path so the stubs
live inside `node` without touching `sys.path`.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

__all__ = ["generate", "main"]

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "proto"
PROTO_DIR = PROTO_ROOT / "fednode" / "v1"
OUT_DIR = Path(__file__).resolve().parent / "_pb"
_ABSOLUTE_IMPORT = re.compile(r"^from fednode\.v1 import (\w+)", re.MULTILINE)
_INIT = '"""Generated gRPC/protobuf stubs of fednode.v1 (python -m node.peer.regen)."""\n'


def generate() -> dict[str, str]:
    """File name → content of every stub, generated from the .proto files."""
    from grpc_tools import protoc  # a build-time dependency only

    protos = sorted(PROTO_DIR.glob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *(str(p.relative_to(PROTO_ROOT)) for p in protos),
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        generated = Path(tmp) / "fednode" / "v1"
        files = {
            path.name: _ABSOLUTE_IMPORT.sub(r"from node.peer._pb import \1", path.read_text())
            for path in sorted(generated.iterdir())
            if path.suffix in {".py", ".pyi"}
        }
    files["__init__.py"] = _INIT
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node.peer.regen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    files = generate()
    if args.check:
        drifted = [n for n, text in files.items() if _read(OUT_DIR / n) != text]
        for name in drifted:
            print(f"stale generated stub: node/peer/_pb/{name}", file=sys.stderr)
        return 1 if drifted else 0
    OUT_DIR.mkdir(exist_ok=True)
    for name, text in files.items():
        (OUT_DIR / name).write_text(text)
    return 0


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


if __name__ == "__main__":
    raise SystemExit(main())
