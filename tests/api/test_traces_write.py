"""TraceService writes (SPEC §3.3, §3.5): StartTrace, LogSpans, EndTrace, tags, DeleteTraces.

Every test goes through the real server and the generated stub, then reads the result back
(GetTrace) and, where the rule is about storage, counts rows.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from mlgenai.client import Client
from mlgenai.client.convert import from_struct, from_value
from store.uow import Database
from tests.api.trace_support import (
    ERROR,
    OK,
    T0_MS,
    TRACE_ERROR,
    TRACE_IN_PROGRESS,
    TRACE_OK,
    TRACE_TABLES,
    USAGE,
    Traces,
    add_assessment,
    duration,
    duration_ms,
    sid,
    span,
    tid,
    ts,
    usage,
)
from tests.helpers import count_rows, expect_error, snapshot

FAILED = grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture
def tr(client: Client) -> Traces:
    return Traces(client)


@pytest.fixture
def exp(tr: Traces) -> str:
    return tr.experiment("traces")


# -- StartTrace ------------------------------------------------------------------------------


def test_start_creates_a_trace(tr: Traces, exp: str) -> None:
    info = tr.start(
        trace_id=tid(1),
        experiment_id=exp,
        client_request_id="req-1",
        request_time=ts(5),
        execution_duration=duration(250),
        state=TRACE_OK,
        request_preview="question",
        response_preview="answer",
        trace_metadata={"k": "v"},
        tags={"env": "prod"},
    )
    assert info.trace_id == tid(1) and info.experiment_id == exp
    assert info.client_request_id == "req-1"
    assert info.request_time.ToMilliseconds() == T0_MS + 5 and duration_ms(info) == 250
    assert info.state == TRACE_OK
    assert (info.request_preview, info.response_preview) == ("question", "answer")
    assert dict(info.trace_metadata) == {"k": "v"} and dict(info.tags) == {"env": "prod"}
    assert info.span_count == 0 and not info.HasField("token_usage")
    assert tr.info(tid(1)) == info


def test_start_defaults(tr: Traces, exp: str) -> None:
    info = tr.start(trace_id=tid(1), experiment_id=exp)
    assert info.state == TRACE_IN_PROGRESS
    assert not info.HasField("execution_duration")
    assert info.request_time.ToMilliseconds() > T0_MS  # "now"
    assert info.name == "" and info.session_id == "" and dict(info.tags) == {}


def test_start_ignores_output_only_fields(tr: Traces, exp: str) -> None:
    info = tr.start(
        trace_id=tid(1),
        experiment_id=exp,
        session_id="s",
        user_id="u",
        model_id="m",
        run_id="r",
        name="n",
        span_count=9,
    )
    assert (info.session_id, info.user_id, info.model_id, info.run_id, info.name) == ("", "", "", "", "")
    assert info.span_count == 0


def test_start_again_merges(tr: Traces, exp: str) -> None:
    tr.start(
        trace_id=tid(1),
        experiment_id=exp,
        client_request_id="first",
        request_preview="q1",
        tags={"a": "1", "b": "1"},
        trace_metadata={"m1": "x"},
    )
    info = tr.start(
        trace_id=tid(1),
        experiment_id=exp,
        client_request_id="second",
        response_preview="r2",
        tags={"b": "2", "c": "2"},
        trace_metadata={"m1": "changed", "m2": "y"},
    )
    assert dict(info.tags) == {"a": "1", "b": "2", "c": "2"}
    assert dict(info.trace_metadata) == {"m1": "x", "m2": "y"}
    assert info.client_request_id == "second"
    assert (info.request_preview, info.response_preview) == ("q1", "r2")
    assert tr.info(tid(1)) == info


def test_start_is_idempotent(tr: Traces, exp: str, database: Database) -> None:
    fields = {"trace_id": tid(1), "experiment_id": exp, "request_time": ts(0), "tags": {"a": "1"}}
    first = tr.start(**fields)
    rows = snapshot(database, "trace_tags", "trace_metadata", "spans")
    second = tr.start(**fields)
    assert first == second
    assert snapshot(database, "trace_tags", "trace_metadata", "spans") == rows
    assert count_rows(database, "traces") == 1


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("mlflow.trace.session", "session_id"),
        ("mlflow.trace.user", "user_id"),
        ("mlflow.modelId", "model_id"),
        ("mlflow.sourceRun", "run_id"),
    ],
)
def test_start_promotes_reserved_metadata(tr: Traces, exp: str, key: str, field: str) -> None:
    info = tr.start(trace_id=tid(1), experiment_id=exp, trace_metadata={key: "v1"})
    assert getattr(info, field) == "v1" and info.trace_metadata[key] == "v1"
    again = tr.start(trace_id=tid(1), experiment_id=exp, trace_metadata={key: "v2"})
    assert getattr(again, field) == "v1" and again.trace_metadata[key] == "v1"


def test_start_trace_name_tag_names_the_trace(tr: Traces, exp: str) -> None:
    tr.log(exp, span(tid(1), sid(1), name="root"))
    assert tr.info(tid(1)).name == "root"
    info = tr.start(trace_id=tid(1), experiment_id=exp, tags={"mlflow.traceName": "my trace"})
    assert info.name == "my trace" and info.tags["mlflow.traceName"] == "my trace"
    tr.log(exp, span(tid(1), sid(1), name="renamed root"))
    assert tr.info(tid(1)).name == "my trace"


def test_start_after_spans_keeps_spans_and_takes_callers_fields(tr: Traces, exp: str) -> None:
    tr.log(exp, span(tid(1), sid(1), start=10, end=50, inputs="in", outputs="out"))
    info = tr.start(trace_id=tid(1), experiment_id=exp, request_time=ts(0), state=TRACE_ERROR)
    assert info.span_count == 1 and info.request_time.ToMilliseconds() == T0_MS
    assert info.state == TRACE_ERROR and info.request_preview == "in"
    # Spans no longer move what the caller set.
    tr.log(exp, span(tid(1), sid(2), sid(1), start=-100, end=200))
    info = tr.info(tid(1))
    assert info.request_time.ToMilliseconds() == T0_MS and info.state == TRACE_ERROR and info.span_count == 2


def test_start_in_progress_does_not_pin_the_state(tr: Traces, exp: str) -> None:
    tr.start(trace_id=tid(1), experiment_id=exp, state=TRACE_IN_PROGRESS)
    tr.log(exp, span(tid(1), sid(1), end=None))
    assert tr.info(tid(1)).state == TRACE_IN_PROGRESS
    tr.log(exp, span(tid(1), sid(1), end=20, status=ERROR))
    assert tr.info(tid(1)).state == TRACE_ERROR


def test_start_into_other_experiment_is_refused(tr: Traces, exp: str, database: Database) -> None:
    other = tr.experiment("other")
    tr.start(trace_id=tid(1), experiment_id=exp, tags={"a": "1"})
    before = snapshot(database, *TRACE_TABLES)
    err = expect_error(
        FAILED,
        "TRACE_IN_OTHER_EXPERIMENT",
        lambda: tr.start(trace_id=tid(1), experiment_id=other, tags={"b": "2"}, trace_metadata={"m": "1"}),
    )
    assert err.metadata["trace_id"] == tid(1)
    assert snapshot(database, *TRACE_TABLES) == before


# -- LogSpans --------------------------------------------------------------------------------


def test_log_spans_creates_the_trace(tr: Traces, exp: str, database: Database) -> None:
    response = tr.log(
        exp,
        span(tid(1), sid(2), sid(1), name="child", start=20, end=90),
        span(tid(1), sid(1), name="root", start=10, end=60, status=OK),
    )
    assert response.span_count == 2 and list(response.trace_ids) == [tid(1)]
    info = tr.info(tid(1))
    assert info.experiment_id == exp and info.span_count == 2
    assert info.request_time.ToMilliseconds() == T0_MS + 10
    assert duration_ms(info) == 80  # latest end (90) - earliest start (10)
    assert info.state == TRACE_OK and info.name == "root"
    assert count_rows(database, "spans") == 2


def test_log_spans_widens_the_time_range(tr: Traces, exp: str) -> None:
    tr.log(exp, span(tid(1), sid(1), start=100, end=200))
    tr.log(exp, span(tid(1), sid(2), sid(1), start=50, end=300))
    info = tr.info(tid(1))
    assert info.request_time.ToMilliseconds() == T0_MS + 50 and duration_ms(info) == 250


@pytest.mark.parametrize(
    ("status", "end", "state"),
    [(ERROR, 10, TRACE_ERROR), (OK, 10, TRACE_OK), (0, 10, TRACE_OK), (OK, None, TRACE_IN_PROGRESS)],
    ids=["error", "ok", "unset", "running"],
)
def test_state_follows_the_root_span(tr: Traces, exp: str, status: int, end: int | None, state: int) -> None:
    tr.log(exp, span(tid(1), sid(1), status=status, end=end), span(tid(1), sid(2), sid(1), status=ERROR))
    info = tr.info(tid(1))
    assert info.state == state
    if end is None:
        assert not info.HasField("execution_duration")


def test_without_a_root_the_trace_is_in_progress(tr: Traces, exp: str) -> None:
    tr.log(exp, span(tid(1), sid(2), sid(1), status=OK))
    info = tr.info(tid(1))
    assert info.state == TRACE_IN_PROGRESS and info.name == "" and info.request_preview == ""
    tr.log(exp, span(tid(1), sid(1), name="late root", status=OK, inputs="q"))
    info = tr.info(tid(1))
    assert info.state == TRACE_OK and info.name == "late root" and info.request_preview == "q"


def test_previews_come_from_the_root_span(tr: Traces, exp: str) -> None:
    tr.log(
        exp,
        span(tid(1), sid(1), inputs={"question": "why?", "n": 1, "b": [1, "é"]}, outputs="because"),
        span(tid(1), sid(2), sid(1), inputs="child input", outputs="child output"),
    )
    info = tr.info(tid(1))
    assert info.request_preview == '{"b":[1,"é"],"n":1,"question":"why?"}' and info.response_preview == "because"


def test_long_previews_are_cut_to_1000_characters(tr: Traces, exp: str) -> None:
    tr.log(exp, span(tid(1), sid(1), inputs="x" * 5000, outputs="é" * 1000))
    info = tr.info(tid(1))
    assert info.request_preview == "x" * 997 + "..." and info.response_preview == "é" * 1000


def test_callers_previews_win_over_the_root_span(tr: Traces, exp: str) -> None:
    tr.start(trace_id=tid(1), experiment_id=exp, request_preview="mine", response_preview="mine too")
    tr.log(exp, span(tid(1), sid(1), inputs="root in", outputs="root out"))
    info = tr.info(tid(1))
    assert (info.request_preview, info.response_preview) == ("mine", "mine too")


def test_resent_root_updates_name_previews_and_state(tr: Traces, exp: str) -> None:
    tr.log(exp, span(tid(1), sid(1), name="v1", inputs="in 1", outputs="out 1", status=OK))
    tr.log(exp, span(tid(1), sid(1), name="v2", inputs="in 2", outputs="out 2", status=ERROR))
    info = tr.info(tid(1))
    assert (info.name, info.request_preview, info.response_preview) == ("v2", "in 2", "out 2")
    assert info.state == TRACE_ERROR and info.span_count == 1


@pytest.mark.parametrize(
    ("attrs", "session", "user"),
    [
        ({"session.id": "s1", "user.id": "u1"}, "s1", "u1"),
        ({"gen_ai.conversation.id": "c1"}, "c1", ""),
        ({"session.id": 5, "user.id": ""}, "", ""),
    ],
    ids=["session-and-user", "conversation-id", "not-strings"],
)
def test_session_and_user_from_span_attributes(
    tr: Traces, exp: str, attrs: dict[str, object], session: str, user: str
) -> None:
    tr.log(exp, span(tid(1), sid(1)), span(tid(1), sid(2), sid(1), attrs=attrs))
    info = tr.info(tid(1))
    assert (info.session_id, info.user_id) == (session, user)


def test_metadata_session_and_user_win_over_attributes(tr: Traces, exp: str) -> None:
    tr.start(
        trace_id=tid(1), experiment_id=exp, trace_metadata={"mlflow.trace.session": "meta-s", "mlflow.trace.user": "u"}
    )
    tr.log(exp, span(tid(1), sid(1), attrs={"session.id": "attr-s", "user.id": "attr-u"}))
    info = tr.info(tid(1))
    assert (info.session_id, info.user_id) == ("meta-s", "u")


def test_metadata_session_set_later_replaces_the_attribute(tr: Traces, exp: str) -> None:
    tr.log(exp, span(tid(1), sid(1), attrs={"session.id": "attr-s"}))
    info = tr.start(trace_id=tid(1), experiment_id=exp, trace_metadata={"mlflow.trace.session": "meta-s"})
    assert info.session_id == "meta-s"


def test_token_usage_is_tree_aware(tr: Traces, exp: str) -> None:
    # root (no usage) -> agent (10/20, reports the total of its LLM calls) -> llm a, llm b
    # root -> tool (1/2); root -> chain (no usage) -> llm c (100/200, total 333 as reported)
    tr.log(
        exp,
        span(tid(1), sid(1), name="root"),
        span(tid(1), sid(2), sid(1), name="agent", attrs=usage(10, 20)),
        span(tid(1), sid(3), sid(2), name="llm a", attrs=usage(4, 8)),
        span(tid(1), sid(4), sid(2), name="llm b", attrs=usage(6, 12)),
        span(
            tid(1),
            sid(5),
            sid(1),
            name="tool",
            attrs={"mlflow.chat.tokenUsage": '{"input_tokens":1,"output_tokens":2}'},
        ),
        span(tid(1), sid(6), sid(1), name="chain"),
        span(tid(1), sid(7), sid(6), name="llm c", attrs=usage(100, 200, 333)),
    )
    u = tr.info(tid(1)).token_usage
    assert (u.input_tokens, u.output_tokens, u.total_tokens) == (111, 222, 30 + 3 + 333)


def test_token_usage_follows_late_parents(tr: Traces, exp: str) -> None:
    tr.log(exp, span(tid(1), sid(3), sid(2), attrs=usage(4, 8)), span(tid(1), sid(4), sid(2), attrs=usage(6, 12)))
    assert tr.info(tid(1)).token_usage.total_tokens == 30
    tr.log(exp, span(tid(1), sid(2), sid(1), attrs=usage(10, 20, 31)), span(tid(1), sid(1)))
    assert tr.info(tid(1)).token_usage.total_tokens == 31


def test_no_usage_means_unset(tr: Traces, exp: str) -> None:
    tr.log(exp, span(tid(1), sid(1), attrs={USAGE: "not json"}), span(tid(1), sid(2), sid(1)))
    assert not tr.info(tid(1)).HasField("token_usage")


def test_resent_span_replaces_the_earlier_copy(tr: Traces, exp: str) -> None:
    tr.log(exp, span(tid(1), sid(1), name="root"), span(tid(1), sid(2), sid(1), name="llm", attrs=usage(5, 5)))
    tr.log(exp, span(tid(1), sid(2), sid(1), name="llm v2", start=1, end=40, attrs=usage(7, 8)))
    trace = tr.get(tid(1))
    assert [s.name for s in trace.spans] == ["root", "llm v2"]
    assert trace.info.span_count == 2 and trace.info.token_usage.total_tokens == 15
    assert duration_ms(trace.info) == 40
    # Re-sent without usage: the trace no longer reports any.
    tr.log(exp, span(tid(1), sid(2), sid(1), name="llm v3"))
    assert not tr.info(tid(1)).HasField("token_usage")


def test_span_sent_twice_in_one_call_is_stored_once(tr: Traces, exp: str, database: Database) -> None:
    response = tr.log(exp, span(tid(1), sid(1), name="first"), span(tid(1), sid(1), name="second"))
    assert response.span_count == 1
    assert [s.name for s in tr.get(tid(1)).spans] == ["second"]
    assert count_rows(database, "spans") == 1


def test_spans_of_many_traces_in_one_call(tr: Traces, exp: str) -> None:
    response = tr.log(
        exp,
        span(tid(3), sid(1), name="three", start=30, end=31, status=ERROR),
        span(tid(1), sid(1), name="one", start=10, end=12, attrs=usage(1, 1)),
        span(tid(2), sid(1), name="two", start=20, end=25, attrs={"session.id": "s2"}),
        span(tid(1), sid(2), sid(1), start=11, end=19),
    )
    assert list(response.trace_ids) == [tid(1), tid(2), tid(3)] and response.span_count == 4
    one, two, three = (tr.info(tid(n)) for n in (1, 2, 3))
    assert (one.name, one.span_count, duration_ms(one), one.token_usage.total_tokens) == ("one", 2, 9, 2)
    assert (two.name, two.span_count, two.session_id, two.HasField("token_usage")) == ("two", 1, "s2", False)
    assert (three.state, three.request_time.ToMilliseconds()) == (TRACE_ERROR, T0_MS + 30)


def test_a_call_that_creates_one_trace_and_extends_another(tr: Traces, exp: str) -> None:
    """The new trace's fields come from the batch alone, the stored trace's from all its spans."""
    tr.log(exp, span(tid(5), sid(1), name="root", start=0, end=50, status=OK, inputs={"q": "first"}))
    tr.log(
        exp,
        span(tid(6), sid(1), name="fresh", start=5, end=7, status=ERROR, inputs={"q": 1}, attrs={"user.id": "u6"}),
        span(tid(5), sid(2), sid(1), name="child", start=10, end=80),
    )
    old, new = tr.info(tid(5)), tr.info(tid(6))
    assert (old.name, old.span_count, duration_ms(old), old.state, old.request_preview) == (
        "root", 2, 80, TRACE_OK, '{"q":"first"}',
    )  # fmt: skip
    assert (new.name, new.span_count, duration_ms(new), new.state, new.request_preview, new.user_id) == (
        "fresh", 1, 2, TRACE_ERROR, '{"q":1}', "u6",
    )  # fmt: skip
    assert (new.request_time.ToMilliseconds(), old.request_time.ToMilliseconds()) == (T0_MS + 5, T0_MS)


def test_spans_of_a_new_trace_keep_their_content(tr: Traces, exp: str) -> None:
    """A new trace's spans (PostgreSQL: inserted by COPY, jsonb in its binary form) read back
    and filter as sent: non-ASCII text, escapes, nesting and types; a span sent twice in the
    call keeps its last version."""
    attrs = {"note": 'café "q" \\ \n', "city": "東京", "nested": {"list": [1, 2.5, True, None, "x"]}, "n": 7}
    tr.log(
        exp,
        span(tid(7), sid(1), name="first", inputs={"q": "ünï"}),
        span(tid(7), sid(2), sid(1), name="child", attrs=attrs, outputs=["é", {"k": None}]),
        span(tid(7), sid(1), name="root", inputs={"q": "ünï"}, outputs="ok"),
    )
    spans = {s.span_id: s for s in tr.get(tid(7)).spans}
    assert sorted(spans) == [sid(1), sid(2)] and spans[sid(1)].name == "root"
    assert from_struct(spans[sid(2)].attributes) == attrs
    assert (from_value(spans[sid(2)].outputs), from_value(spans[sid(1)].outputs)) == (["é", {"k": None}], "ok")
    assert tr.info(tid(7)).request_preview == '{"q":"ünï"}'
    for expr in ("span.attributes.city = '東京'", "span.attributes.n = '7'", "span.name = 'root'"):
        assert tr.search_ids([exp], expr) == [tid(7)], expr
    assert tr.search_ids([exp], "span.name = 'first'") == []


def test_existing_trace_needs_no_experiment_id(tr: Traces, exp: str) -> None:
    tr.log(exp, span(tid(1), sid(1)))
    response = tr.log("", span(tid(1), sid(2), sid(1)))
    assert list(response.trace_ids) == [tid(1)] and tr.info(tid(1)).span_count == 2


def test_new_trace_needs_an_experiment_id(tr: Traces, exp: str, database: Database) -> None:
    tr.log(exp, span(tid(1), sid(1)))
    before = snapshot(database, *TRACE_TABLES)
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FIELD",
        lambda: tr.log("", span(tid(1), sid(2), sid(1)), span(tid(2), sid(1))),
        field="experiment_id",
    )
    assert snapshot(database, *TRACE_TABLES) == before


def test_trace_of_another_experiment_is_refused(tr: Traces, exp: str, database: Database) -> None:
    other = tr.experiment("other")
    tr.log(exp, span(tid(2), sid(1)))
    before = snapshot(database, *TRACE_TABLES)
    err = expect_error(
        FAILED,
        "TRACE_IN_OTHER_EXPERIMENT",
        lambda: tr.log(other, span(tid(1), sid(1)), span(tid(2), sid(2), sid(1)), span(tid(3), sid(1))),
    )
    assert err.metadata == {"trace_id": tid(2), "experiment_id": exp}
    assert snapshot(database, *TRACE_TABLES) == before


def test_deleted_experiment_is_refused(tr: Traces, exp: str, database: Database) -> None:
    tr.log(exp, span(tid(1), sid(1)))
    tr.client.delete_experiment(exp)
    before = snapshot(database, *TRACE_TABLES)
    expect_error(FAILED, "EXPERIMENT_DELETED", lambda: tr.log(exp, span(tid(2), sid(1))))
    expect_error(FAILED, "EXPERIMENT_DELETED", lambda: tr.log("", span(tid(1), sid(2), sid(1))))
    expect_error(FAILED, "EXPERIMENT_DELETED", lambda: tr.start(trace_id=tid(3), experiment_id=exp))
    expect_error(FAILED, "EXPERIMENT_DELETED", lambda: tr.end(tid(1)))
    expect_error(FAILED, "EXPERIMENT_DELETED", lambda: tr.set_tag(tid(1), "k", "v"))
    expect_error(FAILED, "EXPERIMENT_DELETED", lambda: tr.delete_tag(tid(1), "k"))
    assert snapshot(database, *TRACE_TABLES) == before
    assert tr.info(tid(1)).span_count == 1  # reads still work


def test_experiment_id_with_leading_zeros_is_the_same_experiment(tr: Traces, exp: str) -> None:
    tr.log("0" + exp, span(tid(1), sid(1)))
    tr.log("00" + exp, span(tid(1), sid(2), sid(1)))
    info = tr.start(trace_id=tid(1), experiment_id="0" + exp, tags={"a": "1"})
    assert info.experiment_id == exp and info.span_count == 2


def test_unknown_experiment_is_not_found(tr: Traces, database: Database) -> None:
    expect_error(grpc.StatusCode.NOT_FOUND, "EXPERIMENT_NOT_FOUND", lambda: tr.log("987654", span(tid(1), sid(1))))
    expect_error(
        grpc.StatusCode.NOT_FOUND, "EXPERIMENT_NOT_FOUND", lambda: tr.start(trace_id=tid(1), experiment_id="987654")
    )
    assert count_rows(database, "traces") == 0


# -- EndTrace --------------------------------------------------------------------------------


def test_end_trace_from_its_spans(tr: Traces, exp: str) -> None:
    tr.log(exp, span(tid(1), sid(1), start=0, end=None), span(tid(1), sid(2), sid(1), start=5, end=70))
    info = tr.end(tid(1), TRACE_ERROR, response_preview="done", tags={"k": "v"})
    assert info.state == TRACE_ERROR and duration_ms(info) == 70
    assert info.response_preview == "done" and dict(info.tags) == {"k": "v"}
    # Later spans no longer move the state or the duration the caller set.
    tr.log(exp, span(tid(1), sid(1), start=0, end=500, status=OK))
    info = tr.info(tid(1))
    assert info.state == TRACE_ERROR and duration_ms(info) == 70 and info.span_count == 2


def test_end_trace_with_an_end_time(tr: Traces, exp: str) -> None:
    tr.start(trace_id=tid(1), experiment_id=exp, request_time=ts(0))
    info = tr.end(tid(1), TRACE_OK, end_time=ts(1234))
    assert info.state == TRACE_OK and duration_ms(info) == 1234


# -- tags ------------------------------------------------------------------------------------


def test_set_and_delete_tags(tr: Traces, exp: str) -> None:
    tr.log(exp, span(tid(1), sid(1), name="root"))
    tr.set_tag(tid(1), "env", "dev")
    tr.set_tag(tid(1), "env", "prod")
    tr.set_tag(tid(1), "long", "v" * 8000)
    assert dict(tr.info(tid(1)).tags) == {"env": "prod", "long": "v" * 8000}
    tr.delete_tag(tid(1), "env")
    tr.delete_tag(tid(1), "env")  # idempotent
    tr.delete_tag(tid(1), "never-set")
    assert dict(tr.info(tid(1)).tags) == {"long": "v" * 8000}


def test_trace_name_tag(tr: Traces, exp: str) -> None:
    tr.log(exp, span(tid(1), sid(1), name="root"))
    tr.set_tag(tid(1), "mlflow.traceName", "named")
    assert tr.info(tid(1)).name == "named"
    tr.delete_tag(tid(1), "mlflow.traceName")
    assert tr.info(tid(1)).name == "root"


# -- DeleteTraces ----------------------------------------------------------------------------


def test_delete_by_ids_cascades(tr: Traces, exp: str, database: Database) -> None:
    other = tr.experiment("other")
    for n in (1, 2, 3):
        tr.start(trace_id=tid(n), experiment_id=exp, tags={"t": "1"}, trace_metadata={"m": "1"})
        tr.log(exp, span(tid(n), sid(1)), span(tid(n), sid(2), sid(1)))
        add_assessment(database, tid(n), n)
    tr.log(other, span(tid(9), sid(1)))
    deleted = tr.delete(exp, trace_ids=[tid(1), tid(2), tid(9), tid(404)])
    assert deleted == 2  # tid(9) is another experiment's, tid(404) does not exist
    for name in ("traces", "spans", "trace_tags", "trace_metadata", "assessments"):
        assert count_rows(database, name, f"trace_id IN ('{tid(1)}', '{tid(2)}')") == 0, name
    assert count_rows(database, "spans", f"trace_id = '{tid(3)}'") == 2
    assert count_rows(database, "assessments") == 1
    assert tr.info(tid(9)).experiment_id == other
    expect_error(grpc.StatusCode.NOT_FOUND, "TRACE_NOT_FOUND", lambda: tr.get(tid(1)))
    assert tr.delete(exp, trace_ids=[tid(1), tid(2)]) == 0  # idempotent


def test_delete_oldest_first(tr: Traces, exp: str, database: Database) -> None:
    other = tr.experiment("other")
    for n in range(1, 7):
        tr.log(exp, span(tid(n), sid(1), start=n * 100, end=n * 100 + 1))
    tr.log(other, span(tid(50), sid(1), start=0, end=1))
    # Started strictly before +400 ms: traces 1, 2, 3; at most 2 of them, the oldest.
    assert tr.delete(exp, max_request_time=ts(400), max_traces=2) == 2
    assert sorted(tr.search_ids([exp])) == [tid(n) for n in (3, 4, 5, 6)]
    assert tr.delete(exp, max_request_time=ts(400)) == 1
    assert tr.delete(exp, max_request_time=ts(400)) == 0
    assert sorted(tr.search_ids([exp])) == [tid(n) for n in (4, 5, 6)]
    assert tr.search_ids([other]) == [tid(50)]
    assert count_rows(database, "spans") == 4


def test_a_trace_sent_in_one_call_or_span_by_span_gets_the_same_info(tr: Traces, exp: str) -> None:
    """A trace with no stored spans takes its aggregates from the batch; one with stored spans
    reads them back. Both ways must agree field for field."""

    def tree(trace_id: str) -> list[Any]:
        return [
            span(trace_id, sid(1), name="agent", start=0, end=90, status=OK, inputs={"q": "hi"}, outputs="yo",
                 attrs={**usage(10, 5), "session.id": "sess-1", "user.id": "u-1"}),
            span(trace_id, sid(2), sid(1), name="llm", start=5, end=40, attrs=usage(10, 5)),
            span(trace_id, sid(3), sid(1), name="tool", start=41, end=95, status=ERROR, attrs=usage(1, 2, 4)),
            span(trace_id, sid(4), sid(3), name="late", start=50, end=None),
        ]  # fmt: skip

    whole, pieces = tid(71), tid(72)
    tr.log(exp, *tree(whole))
    for s in reversed(tree(pieces)):  # children first: the root arrives last
        tr.log(exp, s)
    a, b = tr.info(whole), tr.info(pieces)
    for info in (a, b):
        info.ClearField("trace_id")
    assert a == b
    assert (a.span_count, a.name, a.session_id, a.user_id, a.request_preview) == (
        4,
        "agent",
        "sess-1",
        "u-1",
        '{"q":"hi"}',
    )
    assert (a.token_usage.input_tokens, a.token_usage.total_tokens) == (10, 15)  # the root reports all
