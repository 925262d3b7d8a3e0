"""The client's hand-written layer without a server: conversions, retry config, stubs."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import pkgutil

import pytest
from google.protobuf import struct_pb2
from hypothesis import given, strategies as st

import mlgenai.v1
from mlgenai.client import RetryPolicy, from_struct, from_value, to_dict, to_struct, to_value
from mlgenai.v1 import common_pb2, experiment_pb2

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_value_round_trip(value: object) -> None:
    assert from_value(to_value(value)) == value


def test_struct_round_trip_and_integers_stay_integers() -> None:
    doc = {"q": "hi", "n": 3, "f": 0.5, "nested": {"list": [1, None, True]}}
    s = to_struct(doc)
    assert isinstance(s, struct_pb2.Struct)
    back = from_struct(s)
    assert back == doc and isinstance(back["n"], int)


def test_unsupported_values_are_refused() -> None:
    with pytest.raises(TypeError):
        to_value(object())
    with pytest.raises(ValueError):
        to_value(float("nan"))


def test_to_dict_is_plain_python() -> None:
    exp = experiment_pb2.Experiment(
        experiment_id="1", name="n", tags={"a": "b"}, lifecycle_stage=common_pb2.LIFECYCLE_STAGE_DELETED
    )
    exp.create_time.FromMilliseconds(1_700_000_000_123)
    d = to_dict(exp)
    assert d["lifecycle_stage"] == "DELETED"
    assert d["tags"] == {"a": "b"}
    assert d["create_time"] == dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=dt.UTC)
    assert d["update_time"] is None


def test_retry_policy_is_a_valid_service_config() -> None:
    config = json.loads(RetryPolicy(max_attempts=3).service_config())
    policy = config["methodConfig"][0]["retryPolicy"]
    assert policy["maxAttempts"] == 3 and policy["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert {"service": "mlgenai.v1.ExperimentService"} in config["methodConfig"][0]["name"]


def test_every_generated_module_imports() -> None:
    names = [m.name for m in pkgutil.iter_modules(mlgenai.v1.__path__)]
    assert "experiment_service_pb2_grpc" in names
    for name in names:
        importlib.import_module(f"mlgenai.v1.{name}")
