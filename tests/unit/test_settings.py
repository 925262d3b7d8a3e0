"""Settings: a flag beats the environment, which beats the default (SPEC §10)."""

from __future__ import annotations

import argparse

import pytest

from server.settings import Settings, add_arguments, from_namespace


def _parse(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return from_namespace(parser.parse_args(argv))


def test_defaults() -> None:
    s = _parse([])
    assert (s.address, s.database_url, s.workers) == ("127.0.0.1:50051", "sqlite:///mlgenai.db", 1)


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLGENAI_ADDRESS", "127.0.0.1:6000")
    monkeypatch.setenv("MLGENAI_WORKERS", "3")
    monkeypatch.setenv("MLGENAI_LOG_LEVEL", "warning")
    s = _parse(["--workers", "2"])
    assert (s.address, s.workers, s.log_level) == ("127.0.0.1:6000", 2, "WARNING")


@pytest.mark.parametrize("argv", [["--workers", "0"], ["--grace-period", "-1"], ["--log-format", "xml"]])
def test_bad_values_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(argv)
