"""The server around the services: health, reflection, error mapping, limits, call logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from mlgenai.client import UnavailableError, connect
from mlgenai.v1 import experiment_service_pb2 as pb
from server.app import RunningServer, build_server
from server.interceptors import CallInterceptor
from server.settings import Settings
from store.errors import FailedPrecondition
from store.uow import Database
from tests.helpers import count_rows, expect_error

SERVICE = "mlgenai.v1.ExperimentService"


def test_health_reports_serving_overall_and_per_service(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", SERVICE):
            resp = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as info:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_goes_not_serving_when_draining(server: RunningServer, target: str) -> None:
    server.health.enter_graceful_shutdown()
    with grpc.insecure_channel(target) as channel:
        resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
    assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_reflection_lists_every_service(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in responses[0].list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_every_call_logs_one_structured_line(target: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mlgenai.rpc")
    with grpc.insecure_channel(target) as channel:
        stub = channel.unary_unary(
            f"/{SERVICE}/GetExperiment",
            request_serializer=pb.GetExperimentRequest.SerializeToString,
            response_deserializer=lambda b: b,
        )
        stub(pb.GetExperimentRequest(experiment_id="0"), metadata=[("x-request-id", "abc123")], timeout=5)
        with pytest.raises(grpc.RpcError):
            stub(pb.GetExperimentRequest(experiment_id="999"), timeout=5)
    lines = [r for r in caplog.records if r.name == "mlgenai.rpc"]
    assert len(lines) == 2
    ok, missing = lines
    assert (ok.method, ok.code, ok.request_id) == (f"/{SERVICE}/GetExperiment", "OK", "abc123")  # type: ignore[attr-defined]
    assert missing.code == "NOT_FOUND"  # type: ignore[attr-defined]
    for line in lines:
        assert line.duration_ms >= 0 and line.peer.startswith("ipv4:127.0.0.1")  # type: ignore[attr-defined]


# -- the interceptor on a bare server with misbehaving handlers --------------------------------


def _bare_server(behaviors: dict[str, object]) -> tuple[grpc.Server, str]:
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), interceptors=[CallInterceptor()])
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(fn, request_deserializer=None, response_serializer=None)  # type: ignore[arg-type]
        for name, fn in behaviors.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.T", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def bare() -> Iterator[str]:
    def bug(request: bytes, context: grpc.ServicerContext) -> bytes:
        raise RuntimeError("SELECT secret FROM passwords -- leaked?")

    def domain(request: bytes, context: grpc.ServicerContext) -> bytes:
        raise FailedPrecondition("THING_CLOSED", "the thing is closed", {"thing_id": "7"})

    server, target = _bare_server({"Bug": bug, "Domain": domain})
    yield target
    server.stop(None)


def test_an_unexpected_exception_is_internal_without_leaking(bare: str) -> None:
    with grpc.insecure_channel(bare) as channel, pytest.raises(grpc.RpcError) as info:
        channel.unary_unary("/t.T/Bug")(b"", timeout=5)
    err = info.value
    assert err.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in err.details() and "SELECT" not in err.details()
    status = rpc_status.from_call(err)
    assert status is not None
    info_detail = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info_detail)
    assert info_detail.reason == "INTERNAL" and info_detail.domain == "mlgenai"
    assert info_detail.metadata["request_id"] in err.details()


def test_a_domain_error_becomes_its_status_with_error_info(bare: str) -> None:
    with grpc.insecure_channel(bare) as channel, pytest.raises(grpc.RpcError) as info:
        channel.unary_unary("/t.T/Domain")(b"", timeout=5)
    err = info.value
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = rpc_status.from_call(err)
    assert status is not None
    detail = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(detail)
    assert (detail.reason, detail.domain, dict(detail.metadata)) == ("THING_CLOSED", "mlgenai", {"thing_id": "7"})


# -- limits and availability -------------------------------------------------------------------


def test_a_request_over_the_message_limit_is_refused(database: Database) -> None:
    settings = Settings(address="127.0.0.1:0", threads=2, max_message_bytes=1024 * 1024, log_level="WARNING")
    running = build_server(settings, database)
    try:
        big = 2 * 1024 * 1024
        with connect(f"127.0.0.1:{running.port}", max_message_bytes=4 * big) as client:
            expect_error(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "",
                lambda: client.create_experiment("big", tags={"k": "v" * big}),
            )
    finally:
        running.server.stop(None)
    assert count_rows(database, "experiments") == 1  # only Default


def test_an_unreachable_database_is_unavailable_and_retryable(backend: str, tmp_path: object) -> None:
    url = (
        "postgresql+psycopg://postgres@127.0.0.1:1/none"
        if backend == "postgresql"
        else f"sqlite:///{tmp_path}/no/such/dir/x.db"
    )
    db = Database(url, pool_size=2)
    running = build_server(Settings(address="127.0.0.1:0", threads=2, log_level="WARNING"), db)
    try:
        with connect(f"127.0.0.1:{running.port}", retry=None) as client:
            err = expect_error(grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE", lambda: client.get_experiment("0"))
            assert isinstance(err, UnavailableError)
            assert "psycopg" not in err.message and "sqlite" not in err.message.lower()
    finally:
        running.server.stop(None)
        db.dispose()
