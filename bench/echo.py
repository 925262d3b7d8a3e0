"""The ceiling: a bare grpcio sync server with one unary method, in its own process.

``python -m bench.echo --address HOST:PORT --threads 16 --response-bytes N`` serves
``/bench.Echo/Echo``: a generic handler with identity (de)serializers (bytes in, bytes out) that
answers every call with the same ``N`` bytes. Nothing else: no interceptor, no proto, no
database, so it shows what grpcio costs by itself on this machine with the same thread pool.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path
from types import TracebackType

import grpc

METHOD = "/bench.Echo/Echo"
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(address: str, threads: int, response_bytes: int) -> None:
    response = b"x" * response_bytes

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        return response

    handler = grpc.method_handlers_generic_handler("bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads))
    server.add_generic_rpc_handlers((handler,))
    if server.add_insecure_port(address) == 0:
        raise SystemExit(f"cannot listen on {address}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    stop.wait()
    server.stop(1).wait()


class EchoProcess:
    """``python -m bench.echo`` on a free loopback port, ready when a call succeeds."""

    def __init__(self, threads: int, response_bytes: int) -> None:
        self.target = f"127.0.0.1:{free_port()}"
        self.args = [
            sys.executable,
            "-m",
            "bench.echo",
            "--address",
            self.target,
            "--threads",
            str(threads),
            "--response-bytes",
            str(response_bytes),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> EchoProcess:
        self.proc = subprocess.Popen(self.args, cwd=ROOT)
        deadline = time.monotonic() + 30
        with grpc.insecure_channel(self.target) as channel:
            call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"echo server exited with {self.proc.returncode}")
                try:
                    call(b"ping", timeout=1)
                    return self
                except grpc.RpcError:
                    time.sleep(0.1)
        self.__exit__(None, None, None)
        raise TimeoutError("echo server did not answer")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.echo", description=__doc__)
    parser.add_argument("--address", default="127.0.0.1:50099")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--response-bytes", type=int, default=200)
    args = parser.parse_args()
    serve(args.address, args.threads, args.response_bytes)


if __name__ == "__main__":
    main()
