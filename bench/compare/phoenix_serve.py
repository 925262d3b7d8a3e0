"""Starts Phoenix (``phoenix serve``) inside its own virtual environment with its OTLP/gRPC
receiver bound to loopback. Phoenix binds that port to ``[::]`` with no setting to change it,
and this machine's rule is loopback only, so the address is rewritten before ``serve`` runs.
Everything else is configured by Phoenix's own environment variables (``peers.py``)."""

from __future__ import annotations

import sys
from typing import Any

import grpc.aio._server as aio_server

_add_insecure_port = aio_server.Server.add_insecure_port


def _loopback(self: Any, address: str) -> int:
    return _add_insecure_port(self, address.replace("[::]", "127.0.0.1"))


aio_server.Server.add_insecure_port = _loopback  # type: ignore[method-assign]

if __name__ == "__main__":
    from phoenix.server.main import main

    sys.argv = ["phoenix", "serve"]
    main()
