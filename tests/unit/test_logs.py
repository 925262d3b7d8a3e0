"""The JSON log formatter (server/logs.py): one JSON object per record, whatever its extras hold."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from server.logs import JsonFormatter


def _record(extra: dict[str, object], exc_info: Any = None) -> logging.LogRecord:
    log = logging.getLogger("mlgenai.rpc")
    return log.makeRecord(log.name, logging.INFO, __file__, 0, "rpc %s", ("call",), exc_info, extra=extra)


def test_a_record_is_one_json_object_with_its_extras() -> None:
    record = _record({"method": "/m", "code": "OK", "duration_ms": 0.25, "peer": "ipv4:127.0.0.1:1"})
    line = JsonFormatter().format(record)
    assert "\n" not in line
    out = json.loads(line)
    assert out["level"] == "INFO" and out["logger"] == "mlgenai.rpc" and out["msg"] == "rpc call"
    assert out["method"] == "/m" and out["code"] == "OK" and out["duration_ms"] == 0.25
    assert out["time"].endswith("Z") and len(out["time"]) == len("2026-01-01T00:00:00.000Z")
    assert out["pid"] == record.process


def test_the_time_follows_each_record_across_seconds() -> None:
    formatter = JsonFormatter()
    first, second = _record({}), _record({})
    first.created, first.msecs = 1_700_000_000.5, 500.0
    second.created, second.msecs = 1_700_000_001.25, 250.0
    assert json.loads(formatter.format(first))["time"] == "2023-11-14T22:13:20.500Z"
    assert json.loads(formatter.format(second))["time"] == "2023-11-14T22:13:21.250Z"


def test_extras_json_cannot_hold_go_as_text() -> None:
    out = json.loads(JsonFormatter().format(_record({"big": 10**30, "thing": object(), "raw": b"x"})))
    assert out["big"] == 10**30  # beyond orjson's 64 bits: the standard library writes it
    assert out["thing"].startswith("<object object") and out["raw"] == "b'x'"


def test_an_exception_goes_with_its_traceback() -> None:
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        record = _record({"method": "/m"}, sys.exc_info())
    out = json.loads(JsonFormatter().format(record))
    assert "ZeroDivisionError: boom" in out["exc"] and out["method"] == "/m"
