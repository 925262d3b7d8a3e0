"""``make bench-compare`` (issue 7): our side of the race run small against a real server, and the
table's arithmetic on synthetic figures. The peers' sides need MLflow and Phoenix installed into
their own virtual environments (minutes of downloads), so CI does not run them; ``python -m
bench.compare --quick`` runs every side small.
"""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp_service

from bench.compare import ours
from bench.compare.__main__ import machine_speed, table, verdicts
from bench.compare.common import StoredCounter, Workload, parse_result
from bench.compare.payload import otlp_requests
from server.childproc import ServerProcess

SMALL = Workload(experiments=5, ingest_traces=60, traces_per_request=20, search_corpus=120, search_queries=3,
                 feedback=48, feedback_callers=4, records=250)  # fmt: skip


@pytest.mark.slow
@pytest.mark.postgresql_only
def test_our_side_stores_everything_it_acknowledges(db_url: str) -> None:
    dsn = db_url.replace("+psycopg", "")
    with ServerProcess(db_url, workers=2) as server:
        result = ours.run(server.target, dsn, SMALL)
    assert result["experiments_stored"] == SMALL.experiments
    assert result["ingest_spans_sent"] == result["ingest_spans_stored"] == 600
    assert result["search_corpus_traces"] == SMALL.search_corpus  # the peers' corpus size, not the ingest's
    assert result["feedback_stored"] == SMALL.feedback
    assert result["records_stored"] == SMALL.records
    for key in ("experiments_per_s", "ingest_stored_spans_per_s", "feedback_per_s", "merge_records_per_s",
                "read_records_per_s", "search_p50_ms"):  # fmt: skip
        assert result[key] > 0, key
    spans = StoredCounter(dsn, "select count(*) from spans", [])()
    assert spans == 600 + 1200  # the ingest experiment and the search corpus


def test_payload_is_repeatable_and_shaped_as_asked() -> None:
    a = otlp_requests(45, 10, 20, {"service.name": "x"}, seed=3, now_ns=10**18)
    b = otlp_requests(45, 10, 20, {"service.name": "x"}, seed=3, now_ns=10**18)
    assert a == b and len(a) == 3
    sizes = [
        len(otlp_service.ExportTraceServiceRequest.FromString(r).resource_spans[0].scope_spans[0].spans) for r in a
    ]
    assert sizes == [200, 200, 50]


def _results(ours_ingest: float, search_ms: float) -> dict[str, dict[str, float]]:
    base = {"ingest_spans_sent": 100, "ingest_spans_stored": 100}
    return {
        "ours": base | {"ingest_stored_spans_per_s": ours_ingest, "search_p50_ms": search_ms, "feedback_per_s": 500.0},
        "mlflow_w1": base | {"ingest_stored_spans_per_s": 100.0, "search_p50_ms": 40.0, "feedback_per_s": 20.0},
        "mlflow_w2": base | {"ingest_stored_spans_per_s": 50.0, "search_p50_ms": 30.0, "feedback_per_s": 5.0},
        "phoenix": base | {"ingest_stored_spans_per_s": 200.0, "search_p50_ms": 35.0},
    }


def test_ratios_take_the_better_mlflow_and_invert_latency() -> None:
    by_key = {v["key"]: v for v in verdicts(_results(ours_ingest=40_000.0, search_ms=5.0))}
    ingest = by_key["ingest_stored_spans_per_s"]
    assert ingest["vs_mlflow"] == pytest.approx(400.0) and ingest["pass_mlflow"] is True  # against w1's 100
    assert ingest["vs_phoenix"] == pytest.approx(200.0) and ingest["pass_phoenix"] is True
    search = by_key["search_p50_ms"]
    assert search["vs_mlflow"] == pytest.approx(6.0) and search["pass_mlflow"] is True  # w2's 30 ms / 5 ms
    feedback = by_key["feedback_per_s"]
    assert feedback["vs_mlflow"] == pytest.approx(25.0) and feedback["pass_mlflow"] is False  # 50x wanted
    assert "pass_phoenix" not in feedback and feedback["vs_phoenix"] is None  # no Phoenix figure

    missed = {v["key"]: v for v in verdicts(_results(ours_ingest=20_000.0, search_ms=7.0))}
    assert missed["ingest_stored_spans_per_s"]["pass_mlflow"] is False
    assert missed["search_p50_ms"]["pass_mlflow"] is False


def test_table_shows_every_side_the_ratio_and_the_verdict() -> None:
    text = table(_results(ours_ingest=40_000.0, search_ms=5.0))
    line = next(row for row in text.splitlines() if row.startswith("trace ingestion, spans stored"))
    assert "40,000" in line and "400.0× (≥300× PASS)" in line and "200.0× (≥100× PASS)" in line
    assert "ours: ; ingestion stored 100 of 100 spans" in text


def test_the_machine_speed_before_each_side_is_measured_and_shown() -> None:
    speed = machine_speed()
    assert 0 < speed["loop_s"] < 10 and 0 <= speed["busy_pct"] <= 100
    results = _results(ours_ingest=40_000.0, search_ms=5.0)
    results["ours"]["machine"] = {"loop_s": 0.05, "busy_pct": 3.0}
    results["phoenix"]["machine"] = {"loop_s": 0.0625, "busy_pct": 50.0}
    line = next(row for row in table(results).splitlines() if row.startswith("Machine speed"))
    assert line.endswith(": ours 0.050 s, phoenix 0.062 s.")


def test_a_driver_answer_is_its_last_result_line() -> None:
    out = 'log line\nRESULT {"a": 1}\nmore log\nRESULT {"a": 2}\nbye\n'
    assert parse_result(out) == {"a": 2}
    with pytest.raises(ValueError, match="no RESULT"):
        parse_result("nothing here")


def test_a_side_that_lost_spans_has_no_lossless_rate() -> None:
    results = _results(ours_ingest=40_000.0, search_ms=5.0)
    results["mlflow_w2"] |= {"ingest_stored_spans_per_s": 1000.0, "ingest_spans_stored": 60}  # faster, but lossy
    ingest = next(v for v in verdicts(results) if v["key"] == "ingest_stored_spans_per_s")
    assert ingest["vs_mlflow"] == pytest.approx(400.0)  # still against w1's lossless 100/s
    line = next(row for row in table(results).splitlines() if row.startswith("trace ingestion, spans stored"))
    assert "lost 40" in line
