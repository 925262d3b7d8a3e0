"""Run ``python -m server serve`` as a child process (for tests, CI checks and benchmarks).

Not used by the server itself; it lives here so tests and ``bench`` share one implementation.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A server subprocess on a free loopback port; ready when its health check says SERVING."""

    def __init__(
        self,
        database_url: str,
        *extra_args: str,
        workers: int = 1,
        log_level: str = "WARNING",
        log_path: Path | None = None,
    ) -> None:
        self.log_path = log_path
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.args = [
            sys.executable,
            "-m",
            "server",
            "serve",
            "--address",
            self.target,
            "--database-url",
            database_url,
            "--workers",
            str(workers),
            "--log-level",
            log_level,
            *extra_args,
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ServerProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        log = open(self.log_path, "ab") if self.log_path is not None else None  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(self.args, cwd=ROOT, env=env, stderr=log)
        finally:
            if log is not None:
                log.close()
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.target) as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}")
                try:
                    resp = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if resp.status == health_pb2.HealthCheckResponse.SERVING:
                        return self
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        self.stop()
        raise TimeoutError("server did not become SERVING")

    def worker_pids(self) -> list[int]:
        """PIDs of the worker processes (with ``--workers`` > 1), from /proc."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        pids = []
        for child in children:
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"spawn_main" in cmdline:
                pids.append(int(child))
        return pids

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
