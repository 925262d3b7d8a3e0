"""server/preserialized.py: bytes assembled by hand parse as the message they stand for."""

from __future__ import annotations

from hypothesis import given, strategies as st

from mlgenai.v1 import span_pb2, trace_pb2, trace_service_pb2 as pb
from server.preserialized import field, repeated, varint


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_matches_protobuf(n: int) -> None:
    encoded = span_pb2.Span(start_time_unix_nano=n).SerializeToString()  # field 6, wire type 0
    assert varint(n) == encoded[1:] if n else encoded == b""


@given(st.lists(st.text(max_size=300), max_size=20), st.text(max_size=200))
def test_a_trace_and_a_batch_parse_back(names: list[str], trace_id: str) -> None:
    spans = [span_pb2.Span(name=n, span_id=f"{i:016x}") for i, n in enumerate(names)]
    info = trace_pb2.TraceInfo(trace_id=trace_id, span_count=len(spans))
    raw = field(1, info.SerializeToString()) + repeated(2, (s.SerializeToString() for s in spans))
    assert trace_pb2.Trace.FromString(raw) == trace_pb2.Trace(info=info, spans=spans)
    batch = pb.BatchGetTracesResponse.FromString(repeated(1, [raw, raw]))
    assert list(batch.traces) == [trace_pb2.Trace(info=info, spans=spans)] * 2
