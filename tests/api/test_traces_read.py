"""TraceService reads (SPEC §3.4): GetTrace, BatchGetTraces, ListSpans, SearchTraces.

SearchTraces runs over a small fixed data set (``corpus``) in which each filter key tells the
traces apart: every key is tried on its own, then combined with OR / NOT / parentheses.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest

from mlgenai.client import Client, to_struct
from mlgenai.v1 import span_pb2, trace_service_pb2 as pb
from tests.api.trace_support import (
    ERROR,
    OK,
    T0_MS,
    TRACE_OK,
    Traces,
    ns,
    sid,
    span,
    tid,
    usage,
)
from tests.helpers import expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
def tr(client: Client) -> Traces:
    return Traces(client)


# -- GetTrace, BatchGetTraces ----------------------------------------------------------------


def test_get_trace_orders_spans_root_first_then_by_start(tr: Traces) -> None:
    exp = tr.experiment("get")
    tr.log(
        exp,
        span(tid(1), sid(5), sid(1), name="c", start=30),
        span(tid(1), sid(4), sid(1), name="b2", start=20),
        span(tid(1), sid(3), sid(1), name="b1", start=20),
        span(tid(1), sid(2), sid(1), name="a", start=5),
        span(tid(1), sid(1), name="root", start=10, inputs={"x": [1, 2]}, attrs={"k": "v"}),
    )
    trace = tr.get(tid(1))
    assert [s.name for s in trace.spans] == ["root", "a", "b1", "b2", "c"]
    root = trace.spans[0]
    assert root.trace_id == tid(1) and root.parent_span_id == "" and root.attributes.fields["k"].string_value == "v"
    assert [v.number_value for v in root.inputs.struct_value.fields["x"].list_value.values] == [1, 2]
    assert trace.info.span_count == 5
    assert tr.get(tid(1), include_spans=True) == trace
    without = tr.get(tid(1), include_spans=False)
    assert without.info == trace.info and len(without.spans) == 0


def test_get_trace_returns_spans_as_sent(tr: Traces) -> None:
    exp = tr.experiment("get")
    event = span_pb2.SpanEvent(name="exception", time_unix_nano=ns(3), attributes=to_struct({"type": "E", "n": 1}))
    sent = [
        span(tid(1), sid(1), name="root", span_type="AGENT", status=ERROR, message="boom", inputs=[1, "a", None],
             outputs={"answer": {"text": "é", "ok": True}}, attrs={"k": "v", "nested": {"x": [1.5]}}, events=[event]),
        span(tid(1), sid(2), sid(1), name="child", end=None),
    ]  # fmt: skip
    tr.log(exp, *sent)
    assert list(tr.get(tid(1)).spans) == sent
    assert list(tr.stub.ListSpans(pb.ListSpansRequest(trace_id=tid(1))).spans) == sent


def test_get_trace_without_spans_yet(tr: Traces) -> None:
    exp = tr.experiment("get")
    tr.start(trace_id=tid(1), experiment_id=exp)
    trace = tr.get(tid(1))
    assert trace.info.trace_id == tid(1) and len(trace.spans) == 0


def test_batch_get_keeps_request_order_and_omits_missing(tr: Traces) -> None:
    a, b = tr.experiment("a"), tr.experiment("b")
    tr.log(a, span(tid(1), sid(1), name="one"), span(tid(2), sid(1), name="two"))
    tr.log(b, span(tid(3), sid(1), name="three"), span(tid(3), sid(2), sid(1), name="three-child"))
    request = pb.BatchGetTracesRequest(trace_ids=[tid(3), tid(404), tid(1), tid(3), tid(2)])
    traces = tr.stub.BatchGetTraces(request).traces
    assert [t.info.trace_id for t in traces] == [tid(3), tid(1), tid(2)]
    assert [s.name for s in traces[0].spans] == ["three", "three-child"]
    assert traces[0].info.experiment_id == b and traces[1].info.experiment_id == a
    request.include_spans = False
    assert all(len(t.spans) == 0 for t in tr.stub.BatchGetTraces(request).traces)
    assert len(tr.stub.BatchGetTraces(pb.BatchGetTracesRequest(trace_ids=[tid(404)])).traces) == 0


def test_batch_get_500(tr: Traces) -> None:
    exp = tr.experiment("many")
    tr.log(exp, *(span(tid(n), sid(1)) for n in range(1, 501)))
    traces = tr.stub.BatchGetTraces(pb.BatchGetTracesRequest(trace_ids=[tid(n) for n in range(500, 0, -1)])).traces
    assert [t.info.trace_id for t in traces] == [tid(n) for n in range(500, 0, -1)]


# -- ListSpans -------------------------------------------------------------------------------


def _list_all(tr: Traces, trace_id: str, page_size: int) -> tuple[list[str], int]:
    names: list[str] = []
    token, pages = "", 0
    while True:
        page = tr.stub.ListSpans(pb.ListSpansRequest(trace_id=trace_id, page_size=page_size, page_token=token))
        names.extend(s.name for s in page.spans)
        pages += 1
        token = page.next_page_token
        if not token:
            return names, pages


@pytest.mark.parametrize(("page_size", "pages"), [(1, 7), (2, 4), (3, 3), (7, 1), (8, 1), (0, 1), (5000, 1)])
def test_list_spans_pages(tr: Traces, page_size: int, pages: int) -> None:
    exp = tr.experiment("spans")
    # The root starts after its children: it still comes first.
    children = [span(tid(1), sid(n), sid(1), name=f"c{n}", start=n % 3) for n in range(2, 8)]
    tr.log(exp, span(tid(1), sid(1), name="root", start=50), *children)
    expected = ["root"] + [f"c{n}" for n in sorted(range(2, 8), key=lambda n: (n % 3, n))]
    assert _list_all(tr, tid(1), page_size) == (expected, pages)
    assert expected == [s.name for s in tr.get(tid(1)).spans]


def test_list_spans_of_a_trace_without_spans(tr: Traces) -> None:
    exp = tr.experiment("spans")
    tr.start(trace_id=tid(1), experiment_id=exp)
    page = tr.stub.ListSpans(pb.ListSpansRequest(trace_id=tid(1)))
    assert len(page.spans) == 0 and page.next_page_token == ""


def test_list_spans_tokens_are_bound_to_the_trace(tr: Traces) -> None:
    exp = tr.experiment("spans")
    tr.log(exp, *(span(tid(t), sid(n)) for t in (1, 2) for n in (1, 2, 3)))
    token = tr.stub.ListSpans(pb.ListSpansRequest(trace_id=tid(1), page_size=1)).next_page_token
    assert token
    call = tr.stub.ListSpans
    expect_error(INVALID, "INVALID_PAGE_TOKEN", lambda: call(pb.ListSpansRequest(trace_id=tid(2), page_token=token)))
    expect_error(INVALID, "INVALID_PAGE_TOKEN", lambda: call(pb.ListSpansRequest(trace_id=tid(1), page_token="xyz")))
    expect_error(
        INVALID, "INVALID_PAGE_TOKEN", lambda: call(pb.ListSpansRequest(trace_id=tid(1), page_token=token[:-2]))
    )
    search_token = tr.search([exp], page_size=1).next_page_token
    expect_error(
        INVALID, "INVALID_PAGE_TOKEN", lambda: call(pb.ListSpansRequest(trace_id=tid(1), page_token=search_token))
    )
    expect_error(INVALID, "INVALID_FIELD", lambda: call(pb.ListSpansRequest(trace_id=tid(1), page_size=-1)))


# -- SearchTraces: the corpus ----------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    a: str  # experiment with traces 1-5
    b: str  # experiment with trace 6


@pytest.fixture
def corpus(tr: Traces) -> Corpus:
    a, b = tr.experiment("corpus-a"), tr.experiment("corpus-b")
    tr.start(
        trace_id=tid(1),
        experiment_id=a,
        client_request_id="req-1",
        tags={"env": "prod", "team": "search"},
        trace_metadata={
            "env": "prod",
            "mlflow.sourceRun": "run-1",
            "mlflow.modelId": "m-1",
            "mlflow.trace.session": "s-1",
            "mlflow.trace.user": "alice",
        },
    )
    tr.log(
        a,
        span(tid(1), sid(1), name="chat", span_type="CHAIN", start=0, end=100, status=OK,
             inputs={"q": "What is MLflow?"}, outputs="MLflow is a platform"),
        span(tid(1), sid(2), sid(1), name="llm", span_type="LLM", start=10, end=90, status=OK,
             attrs={"model": "gpt-4", "temperature": 0.5, "stream": True, **usage(10, 20)}),
    )  # fmt: skip
    tr.start(
        trace_id=tid(2),
        experiment_id=a,
        client_request_id="req-2",
        tags={"env": "dev"},
        trace_metadata={"mlflow.modelId": "m-2", "mlflow.trace.session": "s-1", "mlflow.trace.user": "bob"},
    )
    tr.log(
        a,
        span(tid(2), sid(1), name="chat", span_type="CHAIN", start=1000, end=1500, status=ERROR),
        span(tid(2), sid(2), sid(1), name="retrieve", span_type="RETRIEVER", start=1100, end=1200, status=ERROR,
             attrs={"model": "gpt-3.5", "stream": False, 'we"ird, {key}': "odd"}),
    )  # fmt: skip
    tr.log(
        a,
        span(tid(3), sid(1), name="agent", span_type="AGENT", start=2000, end=None),
        span(tid(3), sid(2), sid(1), name="search", span_type="TOOL", start=2001, end=2002, status=OK),
    )
    tr.set_tag(tid(3), "mlflow.traceName", "Named Three")
    tr.log(
        a,
        span(
            tid(4),
            sid(1),
            name="Chat",
            span_type="CHAIN",
            start=3000,
            end=3010,
            status=OK,
            inputs="hello WORLD",
            attrs={"k.with.dots": "x", "n": 7},
        ),
    )
    tr.start(trace_id=tid(4), experiment_id=a, tags={"env": "Prod"}, trace_metadata={"mlflow.sourceRun": "run-2"})
    tr.log(a, span(tid(5), sid(2), sid(1), name="orphan", start=4000, end=4001))
    tr.log(b, span(tid(6), sid(1), name="chat", start=500, end=600, status=OK, inputs="What is MLflow?"))
    return Corpus(a, b)


def _ids(*numbers: int) -> list[str]:
    return [tid(n) for n in numbers]


def _matches(tr: Traces, corpus: Corpus, filter: str) -> list[int]:
    found = tr.search_ids([corpus.a], filter, order_by=["trace_id"])
    return [int(t[3:], 16) for t in found]


KEY_CASES: dict[str, list[tuple[str, list[int]]]] = {
    "trace.status / status / state": [
        ("trace.status = 'OK'", [1, 4]),
        ("status = 'ERROR'", [2]),
        ("state = 'IN_PROGRESS'", [3, 5]),
        ("trace.state IN ('OK', 'ERROR')", [1, 2, 4]),
        ("trace.status != 'OK'", [2, 3, 5]),
        ("attributes.status NOT IN ('OK')", [2, 3, 5]),
    ],
    "trace.timestamp_ms / request_time, as epoch ms or RFC 3339": [
        (f"trace.timestamp_ms >= {T0_MS + 1000}", [2, 3, 4, 5]),
        (f"timestamp_ms = {T0_MS + 2000}", [3]),
        (f"trace.request_time < {T0_MS + 1000}", [1]),
        ("request_time < '2025-06-15T15:06:41Z'", [1]),
        ("request_time = '2025-06-15T17:06:42+02:00'", [3]),
        ("trace.request_time > '2025-06-15T15:06:42.999Z'", [4, 5]),
        ("request_time <= '2025-06-15T15:06:41.000Z'", [1, 2]),
    ],
    "trace.execution_time_ms": [
        ("trace.execution_time_ms > 50", [1, 2]),
        ("trace.execution_time_ms <= 10", [4]),
        ("execution_time_ms = 500", [2]),
        ("trace.execution_time_ms IS NULL", [3, 5]),
    ],
    "trace.name": [
        ("trace.name = 'chat'", [1, 2]),
        ("name = 'Named Three'", [3]),
        ("trace.name ILIKE 'chat'", [1, 2, 4]),
        ("trace.name LIKE 'C%'", [4]),
        ("trace.name RLIKE '^[A-Z]'", [3, 4]),
        ("trace.name != 'chat'", [3, 4]),
        ("trace.name IN ('chat', 'Chat')", [1, 2, 4]),
        ("trace.name IS NULL", [5]),
    ],
    "trace.client_request_id, trace.trace_id": [
        ("trace.client_request_id = 'req-1'", [1]),
        ("client_request_id IN ('req-1', 'req-2')", [1, 2]),
        ("trace.client_request_id LIKE 'req-%'", [1, 2]),
        ("trace.client_request_id IS NULL", [3, 4, 5]),
        (f"trace.trace_id = '{tid(3)}'", [3]),
        (f"trace_id IN ('{tid(2)}', '{tid(5)}', '{tid(6)}')", [2, 5]),
        (f"trace.request_id != '{tid(1)}'", [2, 3, 4, 5]),
    ],
    "promoted metadata": [
        ("run_id = 'run-1'", [1]),
        ("trace.run_id IS NOT NULL", [1, 4]),
        ("model_id = 'm-2'", [2]),
        ("model_id LIKE 'm-%'", [1, 2]),
        ("session_id = 's-1'", [1, 2]),
        ("session_id IS NULL", [3, 4, 5]),
        ("user_id = 'alice'", [1]),
        ("user_id IN ('alice', 'bob')", [1, 2]),
    ],
    "tags.<k>": [
        ("tags.env = 'prod'", [1]),
        ("tags.env ILIKE 'prod'", [1, 4]),
        ("tags.env != 'prod'", [2, 4]),
        ("NOT tags.env = 'prod'", [2, 3, 4, 5]),
        ("tags.env IS NULL", [3, 5]),
        ("tag.team IS NOT NULL", [1]),
        ("tags.env IN ('dev', 'Prod')", [2, 4]),
        ("tags.`mlflow.traceName` = 'Named Three'", [3]),
        ("tags.env RLIKE '^[pP]'", [1, 4]),
    ],
    "metadata.<k>": [
        ("metadata.env = 'prod'", [1]),
        ("metadata.`mlflow.modelId` = 'm-1'", [1]),
        ("metadata.`mlflow.trace.session` = 's-1'", [1, 2]),
        ("request_metadata.`mlflow.sourceRun` IS NULL", [2, 3, 5]),
        ("metadata.`mlflow.trace.user` LIKE 'b%'", [2]),
    ],
    "span.name / span.type / span.status": [
        ("span.name = 'llm'", [1]),
        ("span.name = 'chat'", [1, 2]),
        ("span.name LIKE 'ret%'", [2]),
        ("span.name IN ('search', 'orphan')", [3, 5]),
        ("span.name != 'chat'", [1, 2, 3, 4, 5]),
        ("NOT span.name = 'chat'", [3, 4, 5]),
        ("span.type = 'LLM'", [1]),
        ("span.type = 'UNKNOWN'", [5]),
        ("span.type IN ('TOOL', 'RETRIEVER')", [2, 3]),
        ("span.status = 'ERROR'", [2]),
        ("span.status = 'UNSET'", [3, 5]),
        ("span.status = 'OK'", [1, 3, 4]),
    ],
    "span.attributes.<k>": [
        ("span.attributes.model = 'gpt-4'", [1]),
        ("span.attributes.model LIKE 'gpt-%'", [1, 2]),
        ("span.attributes.temperature = '0.5'", [1]),
        ("span.attributes.stream = 'true'", [1]),
        ("span.attributes.stream = 'false'", [2]),
        ("span.attributes.`mlflow.chat.tokenUsage` LIKE '%input_tokens%'", [1]),
        ("span.attributes.missing = 'x'", []),
        ("span.attributes.`we\"ird, {key}` = 'odd'", [2]),
        ("span.attributes.`k.with.dots` = 'x'", [4]),
        ("span.attributes.n = '7'", [4]),
        ("span.attributes.n IN ('7', '8')", [4]),
    ],
    "trace.text": [
        ("trace.text LIKE '%MLflow%'", [1]),
        ("trace.text LIKE '%platform'", [1]),
        ("trace.text ILIKE '%world%'", [4]),
        ("trace.text LIKE '%world%'", []),
    ],
}


def _check(tr: Traces, corpus: Corpus, cases: list[tuple[str, list[int]]]) -> None:
    """Every case on the one corpus; a failure lists all mismatching filters."""
    wrong = [(f, got, expected) for f, expected in cases if (got := _matches(tr, corpus, f)) != expected]
    assert not wrong, "\n".join(f"{f!r}: got {got}, expected {expected}" for f, got, expected in wrong)


@pytest.mark.parametrize("key", list(KEY_CASES))
def test_search_filter_key(tr: Traces, corpus: Corpus, key: str) -> None:
    _check(tr, corpus, KEY_CASES[key])


COMBINED_CASES = [
    ("trace.status = 'ERROR' OR tags.env = 'prod'", [1, 2]),
    ("NOT (trace.status = 'OK')", [2, 3, 5]),
    ("NOT trace.status = 'OK' AND NOT trace.status = 'ERROR'", [3, 5]),
    ("(span.type = 'LLM' OR span.type = 'RETRIEVER') AND NOT metadata.`mlflow.modelId` = 'm-2'", [1]),
    ("tags.env = 'prod' AND (trace.status = 'ERROR' OR trace.name = 'chat')", [1]),
    ("NOT (tags.env IS NOT NULL OR span.name = 'orphan')", [3]),
    ("session_id = 's-1' AND NOT (user_id = 'bob' OR trace.execution_time_ms > 200)", [1]),
    ("((trace.status = 'OK'))", [1, 4]),
    ("trace.status = 'ERROR' OR trace.status = 'OK' AND tags.env = 'prod'", [1, 2]),
    ("(trace.status = 'ERROR' OR trace.status = 'OK') AND tags.env = 'prod'", [1]),
    ("NOT NOT trace.status = 'ERROR'", [2]),
    ("trace.text LIKE '%MLflow%' OR span.attributes.model = 'gpt-3.5' OR trace.name IS NULL", [1, 2, 5]),
    ("NOT (span.status = 'OK' OR span.status = 'ERROR')", [5]),
    (f"(timestamp_ms < {T0_MS + 1500} OR timestamp_ms > {T0_MS + 3500}) and not state = 'IN_PROGRESS'", [1, 2]),
]


def test_search_combined_filters(tr: Traces, corpus: Corpus) -> None:
    _check(tr, corpus, COMBINED_CASES)


def test_search_returns_infos_without_spans(tr: Traces, corpus: Corpus) -> None:
    [info] = tr.search([corpus.a], "trace.trace_id = '" + tid(1) + "'").traces
    assert info == tr.info(tid(1))
    assert info.name == "chat" and info.state == TRACE_OK and info.token_usage.total_tokens == 30
    assert info.run_id == "run-1" and info.session_id == "s-1" and info.span_count == 2


def test_search_several_experiments(tr: Traces, corpus: Corpus) -> None:
    assert tr.search_ids([corpus.a, corpus.b], "span.name = 'chat'", ["trace_id"]) == _ids(1, 2, 6)
    assert tr.search_ids([corpus.b]) == _ids(6)
    assert tr.search_ids([corpus.b, corpus.b, "987654"]) == _ids(6)
    assert tr.search_ids(["987654"]) == []
    assert tr.search_ids([corpus.a, corpus.b], "trace.text LIKE '%MLflow%'", ["trace_id DESC"]) == _ids(6, 1)


ORDER_CASES = [
    ([], [5, 4, 3, 2, 1]),
    (["request_time"], [1, 2, 3, 4, 5]),
    (["request_time ASC"], [1, 2, 3, 4, 5]),
    (["timestamp_ms desc"], [5, 4, 3, 2, 1]),
    (["trace.timestamp_ms DESC"], [5, 4, 3, 2, 1]),
    (["execution_time_ms"], [3, 5, 4, 1, 2]),  # unknown durations first
    (["trace.execution_time_ms DESC"], [2, 1, 4, 3, 5]),
    (["execution_time_ms DESC", "request_time DESC"], [2, 1, 4, 5, 3]),
    (["trace_id DESC"], [5, 4, 3, 2, 1]),
    (["trace_id"], [1, 2, 3, 4, 5]),
]


@pytest.mark.parametrize(("order_by", "expected"), ORDER_CASES, ids=[", ".join(c[0]) or "default" for c in ORDER_CASES])
def test_search_order_and_pages(tr: Traces, corpus: Corpus, order_by: list[str], expected: list[int]) -> None:
    for page_size in (0, 1, 2, 4):
        assert tr.search_ids([corpus.a], "", order_by, page_size) == _ids(*expected), page_size


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ("trace.status = 'OK'", [4, 6, 1]),
        ("trace.state IN ('OK', 'IN_PROGRESS')", [5, 4, 3, 6, 1]),  # IN: the statement SQLAlchemy builds
        ("trace.text ILIKE '%world%'", [4]),  # a JSON path, which SQLite's bind processor writes
        ("span.attributes.n = '7' OR trace.status = 'ERROR'", [4, 2]),
    ],
)
def test_filtered_pages_in_two_experiments(tr: Traces, corpus: Corpus, filter: str, expected: list[int]) -> None:
    """Every page size gives the same traces of both experiments (trace 6 is the second's), in
    the default order: each filter's statement is reused with every page's values."""
    for page_size in (0, 1, 2, 3):
        assert tr.search_ids([corpus.a, corpus.b], filter, [], page_size) == _ids(*expected), page_size


def test_search_ties_break_on_trace_id_across_pages(tr: Traces) -> None:
    exp = tr.experiment("ties")
    tr.log(exp, *(span(tid(n), sid(1), start=n % 2, end=50) for n in range(1, 12)))
    newest_first = [n for n in range(1, 12) if n % 2] + [n for n in range(1, 12) if not n % 2]
    for size in (1, 2, 3, 4):
        assert tr.search_ids([exp], page_size=size) == _ids(*newest_first)
        assert tr.search_ids([exp], "", ["request_time", "trace_id DESC"], size) == _ids(*reversed(newest_first))


def test_search_page_size_is_clamped_to_1000(tr: Traces) -> None:
    exp = tr.experiment("big")
    tr.log(exp, *(span(tid(n), sid(1), start=n) for n in range(1, 1002)))
    first = tr.search([exp], page_size=5000)
    assert len(first.traces) == 1000 and first.next_page_token
    assert len(tr.search([exp], page_size=0).traces) == 100
    second = tr.search([exp], page_size=5000, page_token=first.next_page_token)
    assert [t.trace_id for t in second.traces] == [tid(1)] and second.next_page_token == ""


# -- SearchTraces: rejected requests ---------------------------------------------------------


BAD_FILTERS = [
    "foo = 'x'",
    "params.x = 'a'",
    "trace.timestamp_ms LIKE '1%'",
    "trace.timestamp_ms = 'yesterday'",
    "request_time > '2025-06-15'",
    "trace.execution_time_ms = 1.5",
    "trace.status = 'DONE'",
    "trace.status = 1",
    "trace.text = 'x'",
    "span.foo = 'x'",
    "span.status = 'FAILED'",
    "span.attributes.model IS NULL",
    "(trace.status = 'OK'",
    "trace.status = 'OK')",
    "tags.env = prod",
    "trace.status = 'OK' AND",
    "trace.name LIKE 'abc\\'",
    "trace.name RLIKE '('",
    "tags. = 'x'",
    "trace.name = 'x' OR OR trace.name = 'y'",
    "trace.name IS 'x'",
    "NOT",
    "a" * 10_001,
    "trace.name = 'a\x00'",
]


def test_search_rejects_bad_filters(tr: Traces, corpus: Corpus) -> None:
    for bad in BAD_FILTERS:
        err = expect_error(INVALID, "INVALID_FILTER", lambda f=bad: tr.search([corpus.a], f), field="filter")
        assert err.details(), bad


BAD_ORDERS = [["name"], ["request_time UP"], ["request_time DESC extra"], ["request_time", "timestamp_ms DESC"], [""]]


@pytest.mark.parametrize("order_by", BAD_ORDERS, ids=["unknown-key", "direction", "three-words", "duplicate", "empty"])
def test_search_rejects_bad_order(tr: Traces, corpus: Corpus, order_by: list[str]) -> None:
    expect_error(INVALID, "INVALID_ORDER_BY", lambda: tr.search([corpus.a], "", order_by), field="order_by")


def test_search_rejects_bad_experiment_ids(tr: Traces, corpus: Corpus) -> None:
    expect_error(INVALID, "INVALID_FIELD", lambda: tr.search([]), field="experiment_ids")
    expect_error(INVALID, "INVALID_FIELD", lambda: tr.search([str(n) for n in range(101)]), field="experiment_ids")
    expect_error(INVALID, "INVALID_FIELD", lambda: tr.search([corpus.a, "abc"]), field="experiment_ids")
    expect_error(INVALID, "INVALID_FIELD", lambda: tr.search([corpus.a], page_size=-1), field="page_size")
    assert tr.search_ids([str(n) for n in range(1000, 1100)]) == []


def test_search_page_tokens_are_bound_to_the_request(tr: Traces, corpus: Corpus) -> None:
    token = tr.search([corpus.a], "trace.status != 'ERROR'", ["request_time"], page_size=1).next_page_token
    assert token
    bad = "INVALID_PAGE_TOKEN"
    expect_error(INVALID, bad, lambda: tr.search([corpus.a], "trace.status = 'OK'", ["request_time"], page_token=token))
    expect_error(INVALID, bad, lambda: tr.search([corpus.a], "trace.status != 'ERROR'", [], page_token=token))
    expect_error(INVALID, bad, lambda: tr.search([corpus.a], "trace.status != 'ERROR'", ["trace_id"], page_token=token))
    expect_error(
        INVALID,
        bad,
        lambda: tr.search([corpus.a, corpus.b], "trace.status != 'ERROR'", ["request_time"], page_token=token),
    )
    for garbage in ("x", "!!!", token[:-1], token + "A", "A" * 200):
        expect_error(INVALID, bad, lambda g=garbage: tr.search([corpus.a], page_token=g), field="page_token")
    # The same request with the token goes on.
    page = tr.search([corpus.a], "trace.status != 'ERROR'", ["request_time"], page_size=1, page_token=token)
    assert [t.trace_id for t in page.traces] == [tid(3)]
