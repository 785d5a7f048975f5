"""Structured logs: one JSON object per line with the record's extra fields."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from node.logs import JsonFormatter


def _record(created: float, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("fednode.http", logging.INFO, __file__, 1, "request %s", ("x",),
                               None)
    record.created, record.msecs = created, (created - int(created)) * 1000
    record.__dict__.update(extra)
    return record


def test_a_line_is_json_with_timestamp_level_message_and_extras() -> None:
    formatter = JsonFormatter()
    # Consecutive records across second boundaries: the cached date must follow.
    for created in (1_700_000_000.999, 1_700_000_001.0, 1_700_000_001.5, 1_700_000_060.25):
        line = json.loads(formatter.format(_record(created, status=200, path="/api", ms=1.5,
                                                   thing=object())))
        expected = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        assert line["ts"] == expected + "Z"
        assert (line["level"], line["logger"], line["msg"]) == ("INFO", "fednode.http",
                                                                "request x")
        assert (line["status"], line["path"], line["ms"]) == (200, "/api", 1.5)
        assert line["thing"].startswith("<object object")  # not encodable: written as str
        assert "pathname" not in line and "thread" not in line


def test_an_exception_is_logged_with_its_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record(1_700_000_000.0)
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in line["exc"]
