"""TraceService rejects bad input: the status, the reason, the field, and nothing stored.

One test per rule of the contract (span.proto, trace.proto, trace_service.proto). Each runs
the rejected call inside ``nothing_stored``, which snapshots the trace tables before and after.
Rejected searches and page tokens are in ``test_traces_read.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from mlgenai.client import Client, MlgenaiError, to_struct
from mlgenai.v1 import span_pb2, trace_pb2, trace_service_pb2 as pb
from store.uow import Database
from tests.api.trace_support import TRACE_IN_PROGRESS, TRACE_OK, TRACE_TABLES, Traces, duration, sid, span, tid, ts
from tests.helpers import count_rows, expect_error, snapshot

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND


@pytest.fixture
def tr(client: Client) -> Traces:
    return Traces(client)


@pytest.fixture
def exp(tr: Traces) -> str:
    """An experiment holding one trace, tid(1), with a root span, a tag and metadata."""
    exp = tr.experiment("bad-input")
    tr.start(trace_id=tid(1), experiment_id=exp, tags={"t": "1"}, trace_metadata={"m": "1"})
    tr.log(exp, span(tid(1), sid(1), name="root"))
    return exp


@contextmanager
def nothing_stored(db: Database) -> Iterator[None]:
    before = snapshot(db, *TRACE_TABLES)
    yield
    assert snapshot(db, *TRACE_TABLES) == before, "a rejected call changed the database"


@contextmanager
def nothing_stored_but_spans(db: Database) -> Iterator[None]:
    """Like ``nothing_stored`` for a trace with very many spans: those are counted, not compared."""
    before = snapshot(db, "traces", "trace_tags", "trace_metadata"), count_rows(db, "spans")
    yield
    assert (snapshot(db, "traces", "trace_tags", "trace_metadata"), count_rows(db, "spans")) == before


def invalid(database: Database, call: Callable[[], Any], field: str | None) -> MlgenaiError:
    """``call`` fails with INVALID_ARGUMENT / INVALID_FIELD (on ``field``) and writes nothing."""
    with nothing_stored(database):
        return expect_error(INVALID, "INVALID_FIELD", call, field=field)


# -- LogSpans: ids ---------------------------------------------------------------------------

BAD_TRACE_IDS = ["", "tr-" + "A" * 32, "tr-" + "a" * 31, "tr-" + "a" * 33, "a" * 32, "tr-" + "g" * 32, "tr_" + "a" * 32]
BAD_TRACE_ID_NAMES = ["empty", "uppercase", "31-hex", "33-hex", "no-prefix", "not-hex", "wrong-prefix"]
BAD_SPAN_IDS = ["", "A" * 16, "a" * 15, "a" * 17, "g" * 16, " " + "a" * 15]
BAD_SPAN_ID_NAMES = ["empty", "uppercase", "15-hex", "17-hex", "not-hex", "space"]


@pytest.mark.parametrize("trace_id", BAD_TRACE_IDS, ids=BAD_TRACE_ID_NAMES)
def test_log_rejects_malformed_trace_id(tr: Traces, exp: str, database: Database, trace_id: str) -> None:
    invalid(database, lambda: tr.log(exp, span(tid(2), sid(1)), span(trace_id, sid(1))), "spans[1].trace_id")


@pytest.mark.parametrize("span_id", BAD_SPAN_IDS, ids=BAD_SPAN_ID_NAMES)
def test_log_rejects_malformed_span_id(tr: Traces, exp: str, database: Database, span_id: str) -> None:
    invalid(database, lambda: tr.log(exp, span(tid(2), span_id)), "spans[0].span_id")


@pytest.mark.parametrize("parent", BAD_SPAN_IDS[1:], ids=BAD_SPAN_ID_NAMES[1:])
def test_log_rejects_malformed_parent_id(tr: Traces, exp: str, database: Database, parent: str) -> None:
    invalid(database, lambda: tr.log(exp, span(tid(2), sid(2), parent)), "spans[0].parent_span_id")


def test_log_rejects_span_that_is_its_own_parent(tr: Traces, exp: str, database: Database) -> None:
    invalid(database, lambda: tr.log(exp, span(tid(1), sid(2), sid(2))), "spans[0].parent_span_id")


# -- LogSpans: fields ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "n" * 1001, "é" * 1001, "a\x00b"], ids=["empty", "1001", "1001-accented", "nul"])
def test_log_rejects_bad_name(tr: Traces, exp: str, database: Database, name: str) -> None:
    invalid(database, lambda: tr.log(exp, span(tid(1), sid(2), sid(1), name=name)), "spans[0].name")


def test_log_accepts_longest_name_and_type(tr: Traces, exp: str) -> None:
    tr.log(exp, span(tid(1), sid(2), sid(1), name="n" * 1000, span_type="t" * 64))
    assert tr.get(tid(1)).spans[1].span_type == "t" * 64


@pytest.mark.parametrize("span_type", ["t" * 65, "LLM\x00"], ids=["65", "nul"])
def test_log_rejects_bad_span_type(tr: Traces, exp: str, database: Database, span_type: str) -> None:
    invalid(database, lambda: tr.log(exp, span(tid(1), sid(2), sid(1), span_type=span_type)), "spans[0].span_type")


@pytest.mark.parametrize("start_ns", [0, -1, -(2**63)], ids=["zero", "minus-one", "int64-min"])
def test_log_rejects_bad_start(tr: Traces, exp: str, database: Database, start_ns: int) -> None:
    bad = span(tid(1), sid(2), sid(1), end=None)
    bad.start_time_unix_nano = start_ns
    invalid(database, lambda: tr.log(exp, bad), "spans[0].start_time_unix_nano")


def test_log_rejects_end_before_start(tr: Traces, exp: str, database: Database) -> None:
    invalid(database, lambda: tr.log(exp, span(tid(1), sid(2), sid(1), start=10, end=9)), "spans[0].end_time_unix_nano")


def test_log_accepts_end_equal_to_start(tr: Traces, exp: str) -> None:
    tr.log(exp, span(tid(1), sid(2), sid(1), start=10, end=10))
    assert tr.info(tid(1)).span_count == 2


def test_log_rejects_unknown_status_code(tr: Traces, exp: str, database: Database) -> None:
    bad = span(tid(1), sid(2), sid(1))
    bad.status.code = 7  # type: ignore[assignment]
    invalid(database, lambda: tr.log(exp, bad), "spans[0].status.code")


@pytest.mark.parametrize("message", ["m" * 8001, "a\x00"], ids=["8001", "nul"])
def test_log_rejects_bad_status_message(tr: Traces, exp: str, database: Database, message: str) -> None:
    call = lambda: tr.log(exp, span(tid(1), sid(2), sid(1), message=message))  # noqa: E731
    invalid(database, call, "spans[0].status.message")


def test_log_rejects_long_attribute_key(tr: Traces, exp: str, database: Database) -> None:
    call = lambda: tr.log(exp, span(tid(1), sid(2), sid(1), attrs={"k" * 251: 1}))  # noqa: E731
    invalid(database, call, "spans[0].attributes")
    tr.log(exp, span(tid(1), sid(2), sid(1), attrs={"k" * 250: 1}))


@pytest.mark.parametrize(
    "fields",
    [
        {"attrs": {"a\x00": 1}},
        {"attrs": {"a": "x\x00y"}},
        {"attrs": {"a": {"deep": ["x", {"k\x00": 1}]}}},
        {"inputs": {"messages": [{"content": "hi\x00"}]}},
        {"inputs": "\x00"},
        {"outputs": ["ok", "\x00"]},
        {"events": [span_pb2.SpanEvent(name="e", time_unix_nano=1, attributes=to_struct({"x": "\x00"}))]},
    ],
    ids=["attr-key", "attr-value", "attr-nested-key", "inputs-nested", "inputs-string", "outputs-list", "event-attr"],
)
def test_log_rejects_nul_in_json(tr: Traces, exp: str, database: Database, fields: dict[str, Any]) -> None:
    invalid(database, lambda: tr.log(exp, span(tid(1), sid(2), sid(1), **fields)), "spans[0]")


def test_log_accepts_escaped_nul_text(tr: Traces, exp: str) -> None:
    """The six characters ``\\u0000`` are text, not a NUL."""
    tr.log(exp, span(tid(1), sid(2), sid(1), inputs="C:\\u0000 and \\\\u0000", attrs={"p": "\\u0000"}))
    stored = tr.get(tid(1)).spans[1]
    assert stored.inputs.string_value == "C:\\u0000 and \\\\u0000"
    assert stored.attributes.fields["p"].string_value == "\\u0000"


@pytest.mark.parametrize(
    "event",
    [span_pb2.SpanEvent(name="", time_unix_nano=1), span_pb2.SpanEvent(name="e" * 1001, time_unix_nano=1)],
    ids=["empty", "1001"],
)
def test_log_rejects_bad_event_name(tr: Traces, exp: str, database: Database, event: span_pb2.SpanEvent) -> None:
    call = lambda: tr.log(exp, span(tid(1), sid(2), sid(1), events=[event]))  # noqa: E731
    invalid(database, call, "spans[0].events[0].name")


def test_log_rejects_no_spans(tr: Traces, exp: str, database: Database) -> None:
    invalid(database, lambda: tr.log(exp), "spans")


def test_log_rejects_more_than_10000_spans(tr: Traces, exp: str, database: Database) -> None:
    spans = [span(tid(2), sid(n + 1)) for n in range(10_001)]
    invalid(database, lambda: tr.log(exp, *spans), "spans")


def _fill_spans(database: Database, trace_id: str, count: int) -> None:
    """Store ``count`` child spans of the root of ``trace_id`` directly (setup for the span limit)."""
    columns = "trace_id, span_id, parent_span_id, name, span_type, status, start_time_unix_nano, payload, proto"
    if database.dialect == "postgresql":
        sql = (
            f"INSERT INTO spans ({columns}) SELECT :trace, lpad(to_hex(i + 4096), 16, '0'), :root, 's', 'UNKNOWN',"
            " 'UNSET', :start + i, '{}'::jsonb, :proto FROM generate_series(1, :count) AS i"
        )
    else:
        sql = (
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) INSERT INTO spans"
            f" ({columns}) SELECT :trace, printf('%016x', i + 4096), :root, 's', 'UNKNOWN', 'UNSET', :start + i,"
            " '{}', :proto FROM n"
        )
    params = {"trace": trace_id, "root": sid(1), "start": span(trace_id, sid(1)).start_time_unix_nano}
    with database.engine.begin() as conn:
        conn.execute(sa.text(sql), {**params, "count": count, "proto": b""})


def test_log_refuses_a_trace_beyond_100000_spans(tr: Traces, exp: str, database: Database) -> None:
    _fill_spans(database, tid(1), 99_998)  # + the root: 99,999
    with nothing_stored_but_spans(database):
        call = lambda: tr.log(exp, span(tid(1), sid(2), sid(1)), span(tid(1), sid(3), sid(1)))  # noqa: E731
        err = expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_SPANS", call)
    assert err.metadata["trace_id"] == tid(1)
    assert count_rows(database, "spans") == 99_999
    assert tr.log(exp, span(tid(1), sid(2), sid(1))).span_count == 1  # exactly 100,000
    assert tr.log(exp, span(tid(1), sid(2), sid(1), name="again")).span_count == 1  # a re-sent span is no more
    assert tr.info(tid(1)).span_count == 100_000


def test_log_reports_every_bad_span(tr: Traces, exp: str, database: Database) -> None:
    err = invalid(
        database,
        lambda: tr.log(exp, span(tid(2), sid(1)), span(tid(2), "x"), span(tid(2), sid(3), name="")),
        "spans[1].span_id",
    )
    assert "spans[2].name" in [v.field for v in err.violations]


def test_log_rejects_malformed_experiment_id(tr: Traces, exp: str, database: Database) -> None:
    invalid(database, lambda: tr.log("abc", span(tid(2), sid(1))), "experiment_id")


# -- StartTrace ------------------------------------------------------------------------------


def start_call(tr: Traces, **fields: Any) -> Callable[[], Any]:
    info = {"trace_id": tid(1), **fields}
    return lambda: tr.start(**info)


@pytest.mark.parametrize("trace_id", BAD_TRACE_IDS, ids=BAD_TRACE_ID_NAMES)
def test_start_rejects_malformed_trace_id(tr: Traces, exp: str, database: Database, trace_id: str) -> None:
    invalid(database, start_call(tr, experiment_id=exp, trace_id=trace_id), "trace_info.trace_id")


@pytest.mark.parametrize(
    "experiment_id", ["", "abc", "-1", "1.5", "9" * 30], ids=["empty", "word", "neg", "dec", "long"]
)
def test_start_rejects_bad_experiment_id(tr: Traces, exp: str, database: Database, experiment_id: str) -> None:
    invalid(database, start_call(tr, experiment_id=experiment_id), "trace_info.experiment_id")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client_request_id", "c" * 251),
        ("client_request_id", "c\x00"),
        ("request_preview", "p" * 1001),
        ("response_preview", "p" * 1001),
        ("request_preview", "p\x00"),
    ],
    ids=["client-request-id-251", "client-request-id-nul", "request-preview-1001", "response-preview-1001", "nul"],
)
def test_start_rejects_bad_text(tr: Traces, exp: str, database: Database, field: str, value: str) -> None:
    invalid(database, start_call(tr, experiment_id=exp, **{field: value}), f"trace_info.{field}")


def test_start_rejects_unknown_state(tr: Traces, exp: str, database: Database) -> None:
    invalid(database, start_call(tr, experiment_id=exp, state=9), "trace_info.state")


def test_start_rejects_negative_duration(tr: Traces, exp: str, database: Database) -> None:
    invalid(
        database, start_call(tr, experiment_id=exp, execution_duration=duration(-1)), "trace_info.execution_duration"
    )


@pytest.mark.parametrize(
    "metadata",
    [{"": "v"}, {"k" * 251: "v"}, {"k": "v" * 8001}, {"k\x00": "v"}, {"k": "v\x00"}],
    ids=["empty-key", "251-key", "8001-value", "nul-key", "nul-value"],
)
def test_start_rejects_bad_metadata(tr: Traces, exp: str, database: Database, metadata: dict[str, str]) -> None:
    err = invalid(database, start_call(tr, experiment_id=exp, trace_metadata={"ok": "1", **metadata}), None)
    assert all(v.field.startswith("trace_info.trace_metadata") for v in err.violations), err.violations


@pytest.mark.parametrize("key", ["mlflow.trace.session", "mlflow.trace.user", "mlflow.modelId", "mlflow.sourceRun"])
def test_start_rejects_long_promoted_metadata(tr: Traces, exp: str, database: Database, key: str) -> None:
    invalid(
        database,
        start_call(tr, experiment_id=exp, trace_metadata={key: "v" * 251}),
        f"trace_info.trace_metadata[{key}]",
    )
    assert (
        tr.start(trace_id=tid(1), experiment_id=exp, trace_metadata={key: "v" * 250}).trace_metadata[key] == "v" * 250
    )


def test_start_rejects_more_than_1000_metadata_keys(tr: Traces, exp: str, database: Database) -> None:
    metadata = {f"k{n}": "v" for n in range(1001)}
    invalid(database, start_call(tr, experiment_id=exp, trace_metadata=metadata), "trace_info.trace_metadata")


@pytest.mark.parametrize(
    "tags",
    [{"": "v"}, {"k" * 251: "v"}, {"k": "v" * 8001}, {"k\x00": "v"}, {"k": "v\x00"}],
    ids=["empty-key", "251-key", "8001-value", "nul-key", "nul-value"],
)
def test_start_rejects_bad_tags(tr: Traces, exp: str, database: Database, tags: dict[str, str]) -> None:
    err = invalid(database, start_call(tr, experiment_id=exp, tags={"ok": "1", **tags}), None)
    assert all(v.field.startswith("trace_info.tags") for v in err.violations), err.violations


def test_start_rejects_more_than_1000_tags(tr: Traces, exp: str, database: Database) -> None:
    invalid(database, start_call(tr, experiment_id=exp, tags={f"k{n}": "v" for n in range(1001)}), "trace_info.tags")


def test_tags_beyond_1000_per_trace_are_refused(tr: Traces, exp: str, database: Database) -> None:
    tr.start(trace_id=tid(1), experiment_id=exp, tags={f"k{n}": "v" for n in range(999)})  # + "t" = 1000
    exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED
    with nothing_stored(database):
        expect_error(exhausted, "TOO_MANY_TAGS", start_call(tr, experiment_id=exp, tags={"new": "v"}))
        expect_error(exhausted, "TOO_MANY_TAGS", lambda: tr.set_tag(tid(1), "new", "v"))
        expect_error(exhausted, "TOO_MANY_TAGS", lambda: tr.end(tid(1), tags={"new": "v"}))
    tr.set_tag(tid(1), "k0", "overwritten")  # overwriting stays within the limit
    assert len(tr.info(tid(1)).tags) == 1000


# -- EndTrace --------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [0, TRACE_IN_PROGRESS, 9], ids=["unspecified", "in-progress", "unknown"])
def test_end_rejects_bad_state(tr: Traces, exp: str, database: Database, state: int) -> None:
    invalid(database, lambda: tr.end(tid(1), state), "state")


def test_end_rejects_bad_fields(tr: Traces, exp: str, database: Database) -> None:
    invalid(database, lambda: tr.end("tr-1"), "trace_id")
    invalid(database, lambda: tr.end(tid(1), response_preview="p" * 1001), "response_preview")
    invalid(database, lambda: tr.end(tid(1), tags={"": "v"}), "tags[]")


# -- unknown traces --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda tr: tr.get(tid(404)),
        lambda tr: tr.end(tid(404)),
        lambda tr: tr.set_tag(tid(404), "k", "v"),
        lambda tr: tr.delete_tag(tid(404), "k"),
        lambda tr: tr.stub.ListSpans(pb.ListSpansRequest(trace_id=tid(404))),
    ],
    ids=["GetTrace", "EndTrace", "SetTraceTag", "DeleteTraceTag", "ListSpans"],
)
def test_unknown_trace_is_not_found(tr: Traces, exp: str, database: Database, call: Callable[[Traces], Any]) -> None:
    with nothing_stored(database):
        err = expect_error(NOT_FOUND, "TRACE_NOT_FOUND", lambda: call(tr))
    assert err.metadata["trace_id"] == tid(404)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda tr: tr.get("tr-x"), "trace_id"),
        (lambda tr: tr.stub.ListSpans(pb.ListSpansRequest(trace_id="x")), "trace_id"),
        (lambda tr: tr.set_tag(tid(1).upper(), "k", "v"), "trace_id"),
        (lambda tr: tr.delete_tag("", "k"), "trace_id"),
    ],
    ids=["GetTrace", "ListSpans", "SetTraceTag", "DeleteTraceTag"],
)
def test_malformed_trace_id_is_invalid(
    tr: Traces, exp: str, database: Database, call: Callable[[Traces], Any], field: str
) -> None:
    invalid(database, lambda: call(tr), field)


# -- tags ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("", "v", "key"),
        ("k" * 251, "v", "key"),
        ("k", "v" * 8001, "value"),
        ("k\x00", "v", "key"),
        ("k", "\x00", "value"),
    ],
    ids=["empty-key", "251-key", "8001-value", "nul-key", "nul-value"],
)
def test_set_tag_rejects_bad_tag(tr: Traces, exp: str, database: Database, key: str, value: str, field: str) -> None:
    invalid(database, lambda: tr.set_tag(tid(1), key, value), field)


@pytest.mark.parametrize("key", ["", "k" * 251, "k\x00"], ids=["empty", "251", "nul"])
def test_delete_tag_rejects_bad_key(tr: Traces, exp: str, database: Database, key: str) -> None:
    invalid(database, lambda: tr.delete_tag(tid(1), key), "key")


# -- BatchGetTraces --------------------------------------------------------------------------


def test_batch_get_rejects_bad_ids(tr: Traces, exp: str) -> None:
    batch = tr.stub.BatchGetTraces
    expect_error(INVALID, "INVALID_FIELD", lambda: batch(pb.BatchGetTracesRequest()), field="trace_ids")
    too_many = [tid(n) for n in range(501)]
    expect_error(
        INVALID, "INVALID_FIELD", lambda: batch(pb.BatchGetTracesRequest(trace_ids=too_many)), field="trace_ids"
    )
    malformed = [tid(1), "tr-1"]
    err = expect_error(
        INVALID, "INVALID_FIELD", lambda: batch(pb.BatchGetTracesRequest(trace_ids=malformed)), field="trace_ids[1]"
    )
    assert [v.field for v in err.violations] == ["trace_ids[1]"]
    assert len(batch(pb.BatchGetTracesRequest(trace_ids=too_many[:500])).traces) == 1


# -- DeleteTraces ----------------------------------------------------------------------------


def test_delete_needs_exactly_one_selector(tr: Traces, exp: str, database: Database) -> None:
    invalid(database, lambda: tr.delete(exp), "trace_ids")
    invalid(database, lambda: tr.delete(exp, trace_ids=[tid(1)], max_request_time=ts(0)), "trace_ids")


def test_delete_rejects_bad_ids(tr: Traces, exp: str, database: Database) -> None:
    invalid(database, lambda: tr.delete(exp, trace_ids=[tid(1), "tr-x"]), "trace_ids[1]")
    invalid(database, lambda: tr.delete(exp, trace_ids=[tid(n) for n in range(1001)]), "trace_ids")


@pytest.mark.parametrize("max_traces", [-1, 10_001], ids=["negative", "10001"])
def test_delete_rejects_bad_max_traces(tr: Traces, exp: str, database: Database, max_traces: int) -> None:
    invalid(database, lambda: tr.delete(exp, max_request_time=ts(10**6), max_traces=max_traces), "max_traces")


def test_delete_rejects_max_traces_with_ids(tr: Traces, exp: str, database: Database) -> None:
    invalid(database, lambda: tr.delete(exp, trace_ids=[tid(1)], max_traces=1), "max_traces")


def test_delete_rejects_bad_experiment(tr: Traces, exp: str, database: Database) -> None:
    invalid(database, lambda: tr.delete("", trace_ids=[tid(1)]), "experiment_id")
    invalid(database, lambda: tr.delete("abc", trace_ids=[tid(1)]), "experiment_id")
    with nothing_stored(database):
        expect_error(NOT_FOUND, "EXPERIMENT_NOT_FOUND", lambda: tr.delete("987654", trace_ids=[tid(1)]))
    assert count_rows(database, "traces") == 1


# -- StartTrace / EndTrace with a finished trace message -------------------------------------


def test_output_only_fields_are_not_validated(tr: Traces, exp: str) -> None:
    """Output-only fields are ignored, whatever they hold (SPEC §1.9)."""
    info = trace_pb2.TraceInfo(trace_id=tid(2), experiment_id=exp, state=TRACE_OK, session_id="s" * 5000)
    stored = tr.stub.StartTrace(pb.StartTraceRequest(trace_info=info))
    assert stored.session_id == "" and stored.state == TRACE_OK
