"""`fednode audit verify` over a rotated, checkpointed log, and `fednode audit key`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from node.config import load_settings
from node.privacy.audit import AuditLog


def fednode(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def _home(tmp_path: Path, audit: str = "") -> Path:
    home = tmp_path / "home"
    assert fednode("init", home).returncode == 0
    if audit:
        config = home / "fednode.toml"
        config.write_text(config.read_text() + f"\n[audit]\n{audit}\n")
    return home


def _fill(home: Path, n: int) -> AuditLog:
    log = AuditLog.from_settings(load_settings(home).audit, home=home)
    for i in range(n):
        log.append(request_id=f"r{i}", requester="anonymous", datasets=["d"],
                   query={"q": i}, granularity="count")
    return log


def test_verify_with_the_exported_key_checks_checkpoints(tmp_path: Path) -> None:
    home = _home(tmp_path)
    log = _fill(home, 3)
    exported = fednode("audit", "key", home)
    assert exported.returncode == 0 and "BEGIN PUBLIC KEY" in exported.stdout
    public = tmp_path / "node-audit.pem"
    public.write_text(exported.stdout)
    ok = fednode("audit", "verify", home, "--key", public)
    assert ok.returncode == 0 and "3 entries, intact" in ok.stdout
    assert (home / "audit.jsonl.checkpoints").is_file()
    log.path.write_text(log.path.read_text().replace('"q":0', '"q":7'))
    edited = fednode("audit", "verify", home, "--key", public)
    assert edited.returncode == 1 and "edited" in edited.stdout
    not_a_key = fednode("audit", "verify", home, "--key", home / "fednode.toml")
    assert not_a_key.returncode == 2 and "not a readable PEM" in not_a_key.stderr


def test_verify_reads_the_whole_rotated_series(tmp_path: Path) -> None:
    home = _home(tmp_path, "max_bytes = 600")
    _fill(home, 10)
    rotated = sorted(home.glob("audit.jsonl.[0-9]*"))
    assert len(rotated) >= 2
    assert fednode("audit", "verify", home).returncode == 0
    rotated[1].unlink()
    result = fednode("audit", "verify", home)
    assert result.returncode == 1 and "removed" in result.stdout


def test_a_lagging_head_is_a_note_not_a_failure(tmp_path: Path) -> None:
    home = _home(tmp_path)
    log = _fill(home, 3)
    log.close()
    log.head_path.write_text(json.dumps(json.loads(log.path.read_text().splitlines()[0])
                                        | {"requester": None}))
    result = fednode("audit", "verify", home)
    assert result.returncode == 0, result.stdout
    assert "note: head-lags: head lags: 2 entries" in result.stdout
