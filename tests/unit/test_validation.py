"""Request validation (SPEC §1.10), field masks (§1.9) and idempotency fingerprints (§1.8)."""

from __future__ import annotations

import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from mlgenai.v1 import experiment_pb2, experiment_service_pb2 as pb
from server.field_masks import mask_paths
from server.idempotency import fingerprint
from server.validation import Violations
from store import limits
from store.errors import InvalidArgument


def _violations(check: Violations) -> list[tuple[str, str]]:
    with pytest.raises(InvalidArgument) as info:
        check.raise_if_any()
    assert info.value.reason == "INVALID_FIELD"
    return [(v.field, v.description) for v in info.value.violations]


@pytest.mark.parametrize(
    ("value", "problem"),
    [("", "required"), ("   ", "blank"), ("x" * (limits.NAME_MAX + 1), "at most 256"), ("a\x00b", "NUL")],
)
def test_name_rules(value: str, problem: str) -> None:
    check = Violations()
    check.name("name", value)
    [(field, description)] = _violations(check)
    assert field == "name" and problem in description


def test_a_valid_name_passes_and_length_counts_characters_not_bytes() -> None:
    check = Violations()
    check.name("name", "é" * limits.NAME_MAX)
    check.raise_if_any()


def test_every_violation_of_a_request_is_reported_at_once() -> None:
    check = Violations()
    check.name("name", "")
    check.tags("tags", {"": "v", "k" * 251: "v", "ok": "v" * (limits.TAG_VALUE_MAX + 1)})
    check.request_id("not-a-uuid")
    fields = [f for f, _ in _violations(check)]
    assert fields[0] == "name" and fields[-1] == "request_id" and len(fields) == 5


def test_too_many_tags() -> None:
    check = Violations()
    check.tags("tags", {str(i): "" for i in range(limits.TAGS_PER_ENTITY_MAX + 1)})
    [(field, description)] = _violations(check)
    assert field == "tags" and "1000" in description


def test_update_mask_rules() -> None:
    exp = experiment_pb2.Experiment(experiment_id="1", name="new")
    kw = {"mutable": {"name"}, "output_only": {"experiment_id", "create_time"}}
    assert mask_paths(FieldMask(paths=["name"]), exp, **kw) == {"name"}
    assert mask_paths(FieldMask(paths=["create_time"]), exp, **kw) == set()
    assert mask_paths(FieldMask(), exp, **kw) == {"name"}
    assert mask_paths(FieldMask(), experiment_pb2.Experiment(experiment_id="1"), **kw) == set()
    with pytest.raises(InvalidArgument) as info:
        mask_paths(FieldMask(paths=["name", "tags", "nope"]), exp, **kw)
    assert [v.field for v in info.value.violations] == ["update_mask", "update_mask"]
    assert "tags" in info.value.message and "nope" in info.value.message


def test_fingerprint_ignores_the_request_id_and_sees_everything_else() -> None:
    a = pb.CreateExperimentRequest(name="x", tags={"a": "1", "b": "2"}, request_id="r1")
    b = pb.CreateExperimentRequest(name="x", tags={"b": "2", "a": "1"}, request_id="r2")
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(pb.CreateExperimentRequest(name="x", tags={"a": "1"}))
    assert a.request_id == "r1"  # the caller's message is not modified
