"""Shared by the dataset API tests: seed 003's example record, a Python model of the merge
rules and of versions (what every read is compared with), and brute-force profiles."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlgenai.client import Client
from store.canonical import canonical_json, normalize
from store.dataset_stats import SECTIONS, quote_key

DATASET_TABLES = (
    "evaluation_datasets",
    "evaluation_dataset_tags",
    "evaluation_dataset_experiments",
    "evaluation_dataset_records",
    "evaluation_dataset_versions",
    "evaluation_dataset_fields",
    "request_ids",
)

# The example record of seeds/003_32e438a4cc416278.txt, as it appears there.
SEED_RECORD: dict[str, Any] = {
    "inputs": {
        "question": "What is the capital of France?",
        "context": "France is a country in Western Europe",
        "temperature": 0.7,
    },
    "outputs": {"answer": "The capital of France is Paris."},
    "expectations": {"name": "expected_answer", "value": "Paris"},
    "source": {
        "source_type": "HUMAN",
        "source_data": {"annotator": "geography_expert@company.com", "annotation_date": "2024-08-07"},
    },
    "tags": {"category": "geography", "difficulty": "easy", "validated": "true"},
}
CONTENT_KEYS = ("inputs", "outputs", "expectations", "source", "tags")


def content(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a record holds, without ids and times (``outputs`` None when it has none)."""
    return {k: record.get(k) for k in CONTENT_KEYS}


def key(inputs: Mapping[str, Any]) -> str:
    return canonical_json(inputs)


@dataclass
class ModelRecord:
    record_id: str
    inputs: dict[str, Any]
    outputs: Any = None
    has_outputs: bool = False
    expectations: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "outputs": self.outputs if self.has_outputs else None,
            "expectations": self.expectations,
            "source": self.source,
            "tags": self.tags,
        }


class Model:
    """The merge rules of SPEC §5.3 and the versions of §5.5, applied to plain dicts."""

    def __init__(self) -> None:
        self.current: dict[str, ModelRecord] = {}  # canonical inputs -> record, in creation order
        self.versions: list[dict[str, dict[str, Any]]] = [{}]  # version -> record id -> view

    def merge(self, records: Iterable[Mapping[str, Any]], result: Mapping[str, Any]) -> None:
        """Apply a merge; ``result`` is the server's response (for the new records' ids)."""
        before = self.snapshot()
        for given, outcome in zip(records, result["results"], strict=True):
            rec = normalize(given)
            k = key(rec["inputs"])
            found = self.current.get(k)
            if found is None:
                assert outcome["outcome"] == "CREATED", outcome
                expectations = dict(rec.get("expectations") or {})
                source = rec.get("source") or {}
                kind = source.get("source_type") or ("HUMAN" if expectations else "CODE")
                found = self.current[k] = ModelRecord(
                    outcome["dataset_record_id"],
                    rec["inputs"],
                    expectations=expectations,
                    source={"source_type": kind, "source_data": dict(source.get("source_data") or {})},
                )
            else:
                assert outcome["dataset_record_id"] == found.record_id
            if "outputs" in rec:
                found.outputs, found.has_outputs = rec["outputs"], rec["outputs"] is not None
            found.expectations.update(rec.get("expectations") or {})
            found.tags.update(rec.get("tags") or {})
        if canonical_json(self.snapshot()) != canonical_json(before):  # as JSON: 0 and false differ
            self.versions.append(self.snapshot())

    def delete(self, record_ids: Iterable[str]) -> int:
        gone = set(record_ids)
        doomed = [k for k, r in self.current.items() if r.record_id in gone]
        for k in doomed:
            del self.current[k]
        if doomed:
            self.versions.append(self.snapshot())
        return len(doomed)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {r.record_id: copy.deepcopy(r.view()) for r in self.current.values()}

    @property
    def version(self) -> int:
        return len(self.versions) - 1


def listed(client: Client, dataset_id: str, version: int | None = None, page_size: int = 1000) -> dict[str, Any]:
    """ListRecords as {record id: content}, in the order returned."""
    return {r["dataset_record_id"]: content(r) for r in client.iter_records(dataset_id, version, page_size=page_size)}


# -- brute-force profile -----------------------------------------------------------------------


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null"


def _paths(value: Any, prefix: str, depth: int, out: dict[str, list[Any]]) -> None:
    for k, v in value.items():
        path = prefix + quote_key(k)
        out.setdefault(path, []).append(v)
        if isinstance(v, dict) and depth < 5:
            _paths(v, path + ".", depth + 1, out)


def brute_force_profile(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """The profile of SPEC §5.4 computed from scratch: {part: {path: stats}}."""
    values: dict[str, dict[str, list[Any]]] = {s: {} for s in SECTIONS}
    for given in records:
        rec = normalize(content(given))
        if rec.get("outputs") is not None:
            values["outputs"].setdefault("", []).append(rec["outputs"])
            if isinstance(rec["outputs"], dict):
                _paths(rec["outputs"], "", 1, values["outputs"])
        _paths(rec["inputs"], "", 1, values["inputs"])
        _paths(rec.get("expectations") or {}, "", 1, values["expectations"])
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for section, paths in values.items():
        out[section] = {}
        for path, vs in paths.items():
            types: dict[str, int] = {}
            for v in vs:
                types[_json_type(v)] = types.get(_json_type(v), 0) + 1
            nums = [v for v in vs if _json_type(v) in ("integer", "number")]
            lens = [len(v) for v in vs if isinstance(v, str)]
            out[section][path] = {
                "count": len(vs),
                "type_counts": types,
                "numbers": _number_stats(nums),
                "string_lengths": _number_stats(lens),
                "distinct_count": len({json.dumps(v, sort_keys=True) for v in vs}),
            }
    return out


def _number_stats(xs: list[Any]) -> dict[str, Any] | None:
    if not xs:
        return None
    return {"count": len(xs), "min": min(xs), "max": max(xs), "mean": math.fsum(xs) / len(xs)}


def served_profile(dataset: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """A GetDataset profile in the shape of ``brute_force_profile``."""
    profile = dataset["profile"]
    return {
        section: {
            f["path"]: {k: f[k] for k in ("count", "type_counts", "numbers", "string_lengths", "distinct_count")}
            for f in profile[section]
        }
        for section in SECTIONS
    }


def assert_profiles_match(served: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal, means up to floating-point rounding."""
    assert {s: set(p) for s, p in served.items()} == {s: set(p) for s, p in expected.items()}
    for section, paths in expected.items():
        for path, want in paths.items():
            got = served[section][path]
            where = f"{section}:{path!r}"
            for k in ("count", "type_counts", "distinct_count"):
                assert got[k] == want[k], (where, k, got[k], want[k])
            for k in ("numbers", "string_lengths"):
                if want[k] is None:
                    assert got[k] is None, (where, k, got[k])
                    continue
                assert got[k]["count"] == want[k]["count"], (where, k)
                assert got[k]["min"] == want[k]["min"] and got[k]["max"] == want[k]["max"], (where, k, got[k], want[k])
                assert math.isclose(got[k]["mean"], want[k]["mean"], rel_tol=1e-9, abs_tol=1e-6), (where, k)
