"""Operations for the load generator, and request sources for them.

Requests are serialized by the sources and responses are left as bytes (the multicallables
have no (de)serializers), so the generator spends as little CPU per call as it can. Everything
here is a frozen dataclass defined at module level, so it pickles into generator processes.

A new unary workload is one ``Unary(method, source)``, where ``source(caller, seq)`` returns
the serialized request for call number ``seq`` of caller ``caller`` (unique pairs per run).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

import grpc

from bench.loadgen import CALL_TIMEOUT_S, Call
from mlgenai.v1 import experiment_service_pb2 as pb

SERVICE = "/mlgenai.v1.ExperimentService/"


class RequestSource(Protocol):
    def __call__(self, caller: int, seq: int) -> bytes: ...


@dataclass(frozen=True)
class Fixed:
    """The same serialized request every time."""

    payload: bytes

    def __call__(self, caller: int, seq: int) -> bytes:
        return self.payload


@dataclass(frozen=True)
class Cycle:
    """Serialized requests taken in turn (each caller starts at its own offset)."""

    payloads: tuple[bytes, ...]

    def __call__(self, caller: int, seq: int) -> bytes:
        return self.payloads[(caller * 7 + seq) % len(self.payloads)]


@dataclass(frozen=True)
class CreateExperiments:
    """CreateExperiment requests with unique names (``<prefix>-<caller>-<seq>``) and a few tags."""

    prefix: str
    tags: tuple[tuple[str, str], ...] = (("team", "bench"), ("env", "dev"), ("owner", "loadgen"))
    request_id: bool = True

    def __call__(self, caller: int, seq: int) -> bytes:
        req = pb.CreateExperimentRequest(name=f"{self.prefix}-{caller}-{seq}", tags=dict(self.tags))
        if self.request_id:
            req.request_id = str(uuid.uuid4())
        return req.SerializeToString()


@dataclass(frozen=True)
class Unary:
    """One unary call of ``method`` (a full path, or a name in ExperimentService), with ``metadata``."""

    method: str
    source: RequestSource
    timeout_s: float = CALL_TIMEOUT_S
    metadata: tuple[tuple[str, str], ...] = ()

    @property
    def path(self) -> str:
        return self.method if self.method.startswith("/") else SERVICE + self.method

    def bind(self, channel: grpc.aio.Channel) -> Call:
        multicallable: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(self.path)
        source, timeout, metadata = self.source, self.timeout_s, self.metadata or None

        def call(caller: int, seq: int) -> grpc.aio.UnaryUnaryCall[bytes, bytes]:
            return multicallable(source(caller, seq), timeout=timeout, metadata=metadata)

        return call


@dataclass(frozen=True)
class PagedSearch:
    """Read every page of a SearchExperiments query (one "call" is the whole walk)."""

    filter: str = ""
    page_size: int = 1000
    timeout_s: float = CALL_TIMEOUT_S

    def bind(self, channel: grpc.aio.Channel) -> Call:
        multicallable: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            SERVICE + "SearchExperiments"
        )

        async def walk(caller: int, seq: int) -> int:
            token, rows = "", 0
            while True:
                req = pb.SearchExperimentsRequest(filter=self.filter, page_size=self.page_size, page_token=token)
                raw = await multicallable(req.SerializeToString(), timeout=self.timeout_s)
                page = pb.SearchExperimentsResponse.FromString(raw)
                rows += len(page.experiments)
                token = page.next_page_token
                if not token:
                    return rows

        return walk
