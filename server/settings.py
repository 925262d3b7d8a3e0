"""Server settings: each one a command-line flag and an ``MLGENAI_*`` environment variable.

A flag wins over the environment, which wins over the default (SPEC §10).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from store.limits import REQUEST_BYTES_MAX


@dataclass(frozen=True)
class Settings:
    address: str = "127.0.0.1:50051"
    database_url: str = "sqlite:///mlgenai.db"
    workers: int = 1
    threads: int = 4
    max_concurrent_rpcs: int = 256
    max_message_bytes: int = REQUEST_BYTES_MAX
    grace_period: float = 10.0
    log_level: str = "INFO"
    log_format: str = "json"
    artifact_root: str = "mlflow-artifacts:"
    request_id_ttl_hours: float = 24.0 * 7


_HELP: dict[str, str] = {
    "address": "host:port to listen on (port 0 picks a free port)",
    "database_url": "sqlite:///path or postgresql+psycopg://user@host:port/db",
    "workers": "server processes sharing the port (SO_REUSEPORT); one Python process uses one core",
    "threads": "request threads per process (also the database pool size); more threads add GIL "
    "contention: 4 served short calls fastest here (see README)",
    "max_concurrent_rpcs": "calls in progress per process before new ones get RESOURCE_EXHAUSTED",
    "max_message_bytes": "largest request or response message",
    "grace_period": "seconds in-flight calls get to finish after SIGTERM/SIGINT",
    "log_level": "DEBUG, INFO (one line per call), WARNING or ERROR",
    "log_format": "json (one JSON object per line) or text",
    "artifact_root": "default artifact root of new experiments (<root>/<experiment_id>)",
    "request_id_ttl_hours": "how long request ids are remembered for idempotent retries",
}

_CHOICES: dict[str, Sequence[str]] = {
    "log_level": ("DEBUG", "INFO", "WARNING", "ERROR"),
    "log_format": ("json", "text"),
}


def env_name(field: str) -> str:
    return "MLGENAI_" + field.upper()


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per setting, defaulting to its environment variable or built-in value."""
    defaults = Settings()
    for f in fields(Settings):
        default = getattr(defaults, f.name)
        kind: Callable[[str], Any] = type(default)
        if kind in (int, float):
            kind = _positive(kind)
        elif f.name == "log_level":
            kind = str.upper
        elif f.name == "log_format":
            kind = str.lower
        raw = os.environ.get(env_name(f.name))
        value = kind(raw) if raw is not None else default
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=kind,
            default=value,
            choices=_CHOICES.get(f.name),
            help=f"{_HELP[f.name]} (env {env_name(f.name)}; default {default})",
        )


def from_namespace(ns: argparse.Namespace) -> Settings:
    return Settings(**{f.name: getattr(ns, f.name) for f in fields(Settings)})
