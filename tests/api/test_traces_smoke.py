import time

from mlgenai.client import to_struct, to_value
from mlgenai.v1 import span_pb2, trace_pb2, trace_service_pb2 as tpb, trace_service_pb2_grpc as tg


def span(trace, sid, parent="", name="s", start=None, end=None, attrs=None, inputs=None, outputs=None, status=0):
    now = time.time_ns()
    s = span_pb2.Span(
        trace_id=trace,
        span_id=sid,
        parent_span_id=parent,
        name=name,
        start_time_unix_nano=start or now,
        end_time_unix_nano=end if end is not None else now + 1000,
        status=span_pb2.SpanStatus(code=status),
    )
    if attrs:
        s.attributes.CopyFrom(to_struct(attrs))
    if inputs is not None:
        s.inputs.CopyFrom(to_value(inputs))
    if outputs is not None:
        s.outputs.CopyFrom(to_value(outputs))
    return s


def test_flow(client, target):
    stub = tg.TraceServiceStub(client.channel)
    exp = client.create_experiment("t")["experiment_id"]
    tid = "tr-" + "a" * 32
    r = stub.LogSpans(
        tpb.LogSpansRequest(
            experiment_id=exp,
            spans=[
                span(
                    tid,
                    "1" * 16,
                    name="root",
                    inputs={"q": "hi"},
                    outputs="hello",
                    attrs={"session.id": "s1", "mlflow.chat.tokenUsage": {"input_tokens": 5, "output_tokens": 7}},
                ),
                span(
                    tid,
                    "2" * 16,
                    parent="1" * 16,
                    name="llm",
                    attrs={"mlflow.chat.tokenUsage": '{"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}'},
                ),
            ],
        )
    )
    assert r.trace_ids == [tid]
    t = stub.GetTrace(tpb.GetTraceRequest(trace_id=tid))
    print(t.info)
    assert [s.name for s in t.spans] == ["root", "llm"]
    assert t.info.state == trace_pb2.TRACE_STATE_OK and t.info.session_id == "s1"
    assert t.info.token_usage.total_tokens == 12
    assert t.info.request_preview == '{"q":"hi"}' and t.info.response_preview == "hello"
    stub.SetTraceTag(tpb.SetTraceTagRequest(trace_id=tid, key="env", value="prod"))
    for f in [
        "tags.env = 'prod'",
        "trace.status = 'OK'",
        "span.name = 'llm'",
        "span.attributes.`session.id` = 's1'",
        "trace.text LIKE '%hello%'",
        "session_id = 's1'",
        "NOT span.type = 'LLM'",
    ]:
        res = stub.SearchTraces(tpb.SearchTracesRequest(experiment_ids=[exp], filter=f))
        assert [x.trace_id for x in res.traces] == [tid], f
    st = stub.StartTrace(
        tpb.StartTraceRequest(
            trace_info=trace_pb2.TraceInfo(
                trace_id=tid, experiment_id=exp, trace_metadata={"mlflow.modelId": "m-1"}, tags={"a": "b"}
            )
        )
    )
    assert st.model_id == "m-1" and st.tags["a"] == "b" and st.tags["env"] == "prod"
    e = stub.EndTrace(tpb.EndTraceRequest(trace_id=tid, state=trace_pb2.TRACE_STATE_ERROR))
    assert e.state == trace_pb2.TRACE_STATE_ERROR
    ls = stub.ListSpans(tpb.ListSpansRequest(trace_id=tid, page_size=1))
    assert len(ls.spans) == 1 and ls.next_page_token
    ls2 = stub.ListSpans(tpb.ListSpansRequest(trace_id=tid, page_size=1, page_token=ls.next_page_token))
    assert ls2.spans[0].name == "llm"
    d = stub.DeleteTraces(tpb.DeleteTracesRequest(experiment_id=exp, trace_ids=[tid]))
    assert d.deleted_count == 1
