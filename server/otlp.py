"""OTLP over gRPC (SPEC §3.3): ``opentelemetry.proto.collector.trace.v1.TraceService/Export``.

Any OpenTelemetry SDK or Collector can export into an experiment on the server's own port.

* **Experiment**: the request metadata ``x-mlflow-experiment-id``, else the resource attribute
  ``mlflow.experimentId`` (per resource); neither is INVALID_ARGUMENT (EXPERIMENT_REQUIRED).
* **Spans** get LogSpans' checks and records (``server/convert/spans.py``: ``check_fields``,
  ``record_of``) and are stored by ``TraceRepository.log_spans``: trace id "tr-" + the
  hex of the 16-byte OTLP id, span ids the hex of the 8 bytes; ``mlflow.spanInputs`` /
  ``mlflow.spanOutputs`` (JSON text, as MLflow's SDK sends them; text that is not JSON is kept as
  a string) become inputs/outputs, ``mlflow.spanType`` the span type; ``mlflow.traceRequestId``
  is dropped (the trace id comes from the OTLP id). The other attributes, and those of events,
  become JSON: strings, booleans and doubles as they are (NaN and infinities as the strings
  "NaN", "Infinity", "-Infinity"), integers as numbers (as decimal strings beyond ±2**53, where
  JSON numbers stop being exact), arrays as lists, key-value lists as objects, bytes as base64.
  A span carrying ``mlflow.traceRequestId`` comes from MLflow's SDK, which JSON-encodes every
  attribute value: its string attributes are decoded the same way. JSON text holding numbers
  beyond the double range or nested deeper than 30 levels stays text. The OTel span kind, links
  and dropped-item counts are not kept (``mlgenai.v1.Span`` has no field for them).
* **Tags**: resource attributes other than ``telemetry.sdk.*`` and ``mlflow.*`` become tags of
  every trace with a span under that resource (strings as they are, other values as JSON), unless
  the trace has the tag already (a later export does not undo a SetTraceTag or a root span's
  tag); the root span's attributes ``mlflow.traceTag.<k>`` become tags ``<k>``, replacing what is
  stored (``mlflow.traceName`` also names the trace). A tag that breaks the limits of SPEC §1.10
  is left out and named in ``partial_success.error_message``.
* **Partial success**, the OTLP way: a span that fails validation is skipped and counted in
  ``partial_success.rejected_spans``, with the first problems in ``error_message``; the others
  are stored in one transaction, and the call answers after the commit (SPEC §1.11). Errors
  that concern the whole call (experiment missing, unknown or deleted, a trace of another
  experiment, a trace over 100,000 spans or 1,000 tags, more than 10,000 spans in the call, as
  for LogSpans) fail it, and nothing is written.

The whole request costs a fixed number of statements, whatever its size (``log_spans`` per experiment,
then ``store/repositories/trace_tags.py``): no per-span or per-trace round trip.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
import orjson
from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2 as otlp_pb,
    trace_service_pb2_grpc as otlp_grpc,
)
from opentelemetry.proto.common.v1 import common_pb2

from mlgenai.v1 import span_pb2
from server.convert.common import now_ms
from server.convert.spans import PARENT_RULE, check_fields, read_back, record_of
from server.convert.values import module
from server.validation import Violations
from store import limits
from store.domain import SpanRecord
from store.errors import FieldViolation, InvalidArgument
from store.repositories.experiments import parse_experiment_id
from store.repositories.trace_tags import set_trace_tags
from store.uow import Database, UnitOfWork

log = logging.getLogger("mlgenai.otlp")

SERVICE_NAME: str = otlp_pb.DESCRIPTOR.services_by_name["TraceService"].full_name

EXPERIMENT_HEADER = "x-mlflow-experiment-id"
EXPERIMENT_ATTRIBUTE = "mlflow.experimentId"
SPAN_INPUTS = "mlflow.spanInputs"
SPAN_OUTPUTS = "mlflow.spanOutputs"
SPAN_TYPE = "mlflow.spanType"
TRACE_REQUEST_ID = "mlflow.traceRequestId"
TRACE_TAG_PREFIX = "mlflow.traceTag."
UNTAGGED_RESOURCE_PREFIXES = ("telemetry.sdk.", "mlflow.")
_MAPPED = frozenset((SPAN_INPUTS, SPAN_OUTPUTS, SPAN_TYPE, TRACE_REQUEST_ID))
_EXACT_INT = 2**53
_QUOTED_PROBLEMS = 5  # problems quoted in partial_success.error_message


# -- OTLP values -> JSON ---------------------------------------------------------------------


def any_value(value: common_pb2.AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a JSON value (see the module docstring); unset is None."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        n = value.int_value
        return n if -_EXACT_INT <= n <= _EXACT_INT else str(n)
    if kind == "double_value":
        d = value.double_value
        if math.isfinite(d):
            return d
        return "NaN" if math.isnan(d) else ("Infinity" if d > 0 else "-Infinity")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None  # no value, or string_value_strindex (used by profiles only)


def attributes(kvs: Iterable[common_pb2.KeyValue]) -> dict[str, Any]:
    """Key-values as a dict (a repeated key: the last one wins, as in OTel SDKs). A non-empty
    string is most values: it is read without asking which kind the value is."""
    out: dict[str, Any] = {}
    for kv in kvs:
        value = kv.value
        text = value.string_value
        out[kv.key] = text if text else any_value(value)
    return out


def _finite_float(text: str) -> float:
    d = float(text)
    if not math.isfinite(d):  # 1e999: JSON has no infinity
        raise ValueError("the number is out of range")
    return d


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_JSON_STARTS = frozenset('{["-0123456789tfn')
# Deeper JSON is kept as text: protobuf parsers stop at 100 message levels, and every object
# level costs 3 of them in a Struct (a span read back inside a BatchGetTracesResponse starts at 3).
JSON_DEPTH_MAX = 30
_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constants)


# Where orjson reads a number otherwise than ``_DECODER``: integers beyond 64 bits (20 digits,
# or 19 below -2**63) come out as floats. Such text goes to ``_DECODER``.
_BIG_INTEGER = re.compile(r"[0-9]{20}").search
_BIG_NEGATIVE = re.compile(r"-[0-9]{19}").search


def _parse(text: str) -> Any:
    """``_DECODER.decode(text)`` (ValueError or RecursionError when it is not JSON), by orjson
    where that gives the same value: 2.9 against 9.6 µs for the JSON attributes of a benchmark
    span. What orjson refuses goes to ``_DECODER`` too: it accepts lone surrogates, and refuses
    the rest (NaN, 1e999, text that is not JSON) as orjson does."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _DECODER.decode(text)
    if _BIG_INTEGER(text) is not None or ("-" in text and _BIG_NEGATIVE(text) is not None):
        return _DECODER.decode(text)
    return value


def decode_json(text: Any) -> Any:
    """``text`` parsed as JSON when it is a JSON document; anything else as it is."""
    if not isinstance(text, str) or text.lstrip()[:1] not in _JSON_STARTS:
        return text
    try:
        value = _parse(text)
    except (ValueError, RecursionError):
        return text
    if text.count("{") + text.count("[") > JSON_DEPTH_MAX and not _shallow(value, JSON_DEPTH_MAX):
        return text
    return value


def _shallow(value: Any, room: int) -> bool:
    """Whether ``value`` nests objects and arrays at most ``room`` levels deep."""
    if isinstance(value, dict):
        return room > 0 and all(_shallow(v, room - 1) for v in value.values())
    if isinstance(value, list):
        return room > 0 and all(_shallow(v, room - 1) for v in value)
    return True


def _as_is(value: Any) -> Any:
    return value


def tag_value(value: Any) -> str:
    """A tag's text: strings as they are, any other value as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# -- OTLP span -> mlgenai.v1.Span and store record -------------------------------------------


@dataclass(slots=True)  # not frozen: one per span, and a frozen __init__ costs ~6x
class Converted:
    """An accepted span: its store record and its attributes as stored."""

    record: SpanRecord
    attributes: dict[str, Any]


def _hex_id(checks: Violations, at: str, field: str, raw: bytes, size: int) -> str:
    if len(raw) != size or not any(raw):
        checks.add(f"{at}.{field}", f"{size} bytes, not all zero (got {len(raw)} bytes)")
        return ""
    return raw.hex()


def _fill(target: struct_pb2.Value, value: Any) -> None:
    """Set ``target`` to a JSON value."""
    if isinstance(value, dict):
        target.struct_value.SetInParent()
        _update(target.struct_value, value)
    elif isinstance(value, list):
        target.list_value.SetInParent()
        _extend(target.list_value.values, value)
    elif value is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, str):
        target.string_value = value
    else:
        target.number_value = value


def _update(struct: struct_pb2.Struct, values: Mapping[str, Any]) -> None:
    """``struct.update(values)``, with strings and numbers (most attribute values) set directly
    on the map entry: 6.3 against 10 µs for the attributes of a benchmark span. Lists and
    objects are filled in place (``_fill``), not through ``Struct.update``'s per-item Python."""
    fields = struct.fields
    for key, value in values.items():
        kind = type(value)
        if kind is str:
            fields[key].string_value = value
        elif kind is int or kind is float:
            fields[key].number_value = value
        else:
            _fill(fields[key], value)


def _extend(target: Any, items: list[Any]) -> None:
    """``ListValue.extend(items)`` on its ``values``, strings and numbers set directly: 2.4
    against 6.0 µs for a span's list of five document ids."""
    for item in items:
        kind = type(item)
        if kind is str:
            target.add().string_value = item
        elif kind is int or kind is float:
            target.add().number_value = item
        else:
            _fill(target.add(), item)


# The C module (server/convert/values.py) reads a span's KeyValues from its serialized form (8.6
# against 32 µs for the attributes of a benchmark span), writes the whole stored Span from plain
# values, and reads them back as a Struct gives them. Without the module, the walks do the same.
_C = module()

# A span as the server reads it: (scope index, index in its scope, trace_id, span_id,
# parent_span_id, name, start, end, status code, status message, attributes, events), the events
# (name, time_unix_nano, attributes); attributes as ``attributes`` gives them.
PlainSpan = tuple[
    int, int, bytes, bytes, bytes, str, int, int, int, str, dict[str, Any], list[tuple[str, int, dict[str, Any]]]
]
PlainResource = tuple[dict[str, Any], list[PlainSpan]]


def _walk(request: otlp_pb.ExportTraceServiceRequest) -> list[PlainResource]:
    """``plain_spans`` of a parsed request (without the C module)."""
    out: list[PlainResource] = []
    for resource_spans in request.resource_spans:
        spans: list[PlainSpan] = []
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            for i, span in enumerate(scope_spans.spans):
                status = span.status
                events = [(e.name, e.time_unix_nano, attributes(e.attributes)) for e in span.events]
                spans.append((
                    s, i, span.trace_id, span.span_id, span.parent_span_id, span.name, span.start_time_unix_nano,
                    span.end_time_unix_nano, status.code, status.message, attributes(span.attributes), events,
                ))  # fmt: skip
        out.append((attributes(resource_spans.resource.attributes), spans))
    return out


def plain_spans(data: bytes) -> list[PlainResource]:
    """A serialized ExportTraceServiceRequest as (resource attributes, spans) per ResourceSpans.
    The C module reads the bytes at once, where reading the parsed message's fields, serializing
    each span again for its attributes and walking its events cost ~8 µs a span. Bytes that are
    no such request are INVALID_ARGUMENT."""
    try:
        if _C is not None:
            return _C.otlp_spans(data)  # type: ignore[no-any-return]
        return _walk(otlp_pb.ExportTraceServiceRequest.FromString(data))
    except (ValueError, DecodeError) as exc:  # UnicodeDecodeError too
        raise InvalidArgument(
            "MALFORMED_REQUEST", f"the request is not a valid ExportTraceServiceRequest ({type(exc).__name__})"
        ) from None


def _span_bytes(
    trace_id: str,
    span_id: str,
    parent_span_id: str,
    name: str,
    span_type: str,
    start: int,
    end: int,
    code: int,
    message: str,
    inputs: tuple[Any, ...],
    outputs: tuple[Any, ...],
    attributes: Mapping[str, Any],
    events: list[tuple[str, int, Mapping[str, Any]]],
) -> bytes:
    """The serialized ``Span`` (``_C.encode_span`` without the C module): ``inputs`` and
    ``outputs`` are ``()`` when absent, ``(value,)`` when present."""
    span = span_pb2.Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=name,
        span_type=span_type,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        status=span_pb2.SpanStatus(code=code, message=message),  # type: ignore[arg-type]
    )
    for target, maybe in ((span.inputs, inputs), (span.outputs, outputs)):
        if maybe:
            _fill(target, maybe[0])
    _update(span.attributes, attributes)
    for event_name, event_time, event_attrs in events:
        _update(span.events.add(name=event_name, time_unix_nano=event_time).attributes, event_attrs)
    return span.SerializeToString()


# With the C module, the stored Span is written from the plain values in one pass (a Struct's keys
# in the sender's order, where upb writes its hash order: the same message) and they are read back
# in C: convert of a benchmark span 99 against 68 µs, against building the Span with upb.
_encode_span: Callable[..., bytes] = _span_bytes if _C is None else _C.encode_span
_read_back: Callable[[Any], Any] = read_back if _C is None else _C.read_back


def convert(span: PlainSpan, checks: Violations, at: str) -> Converted | None:
    """The store record of an OTLP span (as ``plain_spans`` reads it): LogSpans' checks
    (``check_fields``) and record (``record_of``), from the OTLP values; problems go to ``checks``."""
    before = len(checks.items)
    _, _, raw_trace, raw_span, parent, name, start, end, code, message, attrs, events = span
    if len(raw_trace) == 16 and len(raw_span) == 8 and any(raw_trace) and any(raw_span) and len(parent) in (0, 8):
        trace_hex, span_hex = raw_trace.hex(), raw_span.hex()  # the common case, without a call per id
        parent_hex = parent.hex() if any(parent) else ""
    else:
        trace_hex = _hex_id(checks, at, "trace_id", raw_trace, 16)
        span_hex = _hex_id(checks, at, "span_id", raw_span, 8)
        parent_hex = _hex_id(checks, at, "parent_span_id", parent, 8) if any(parent) else ""
    if len(checks.items) > before:
        return None
    decode: Callable[[Any], Any] = decode_json
    if TRACE_REQUEST_ID in attrs:  # MLflow's SDK: every value is JSON text, decoded once here
        attrs = {k: decode_json(v) for k, v in attrs.items()}
        decode = _as_is
    span_type = decode(attrs.get(SPAN_TYPE, ""))
    if not isinstance(span_type, str):
        span_type = tag_value(span_type)
    has_inputs, has_outputs = SPAN_INPUTS in attrs, SPAN_OUTPUTS in attrs
    inputs = decode(attrs[SPAN_INPUTS]) if has_inputs else None
    outputs = decode(attrs[SPAN_OUTPUTS]) if has_outputs else None
    kept = {k: v for k, v in attrs.items() if k not in _MAPPED}
    trace_id = "tr-" + trace_hex
    values = (inputs,) if has_inputs else (), (outputs,) if has_outputs else ()
    try:
        fields = (trace_id, span_hex, parent_hex, name, span_type, start, end, code, message, *values, kept, events)
        proto = _encode_span(*fields)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # e.g. a time beyond int64
        checks.add(at, f"times out of range, or values that cannot be stored ({type(exc).__name__})")
        return None
    if parent_hex and parent_hex == span_hex:  # LogSpans' rule, reported with the others as there
        checks.add(f"{at}.parent_span_id", PARENT_RULE)
    check_fields(checks, at, name, span_type, start, end, code, message, kept, [e[0] for e in events] if events else ())
    if len(checks.items) > before:
        return None
    back = _read_back
    if events:
        events = [(n, t, back(a)) for n, t, a in events]
    record = record_of(
        checks, at, trace_id, span_hex, parent_hex, name, span_type, start, end, code, message, back(kept),
        back(inputs), back(outputs), events, proto,
    )  # fmt: skip
    return Converted(record, kept) if record is not None else None


# -- the request -------------------------------------------------------------------------------


@dataclass
class _Batch:
    """What one Export stores: records per experiment, tags per trace, and what it skipped."""

    records: dict[str, list[SpanRecord]] = field(default_factory=lambda: defaultdict(list))
    resource_tags: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    root_tags: dict[str, dict[str, str]] = field(default_factory=dict)
    rejected: Violations = field(default_factory=Violations)
    rejected_spans: int = 0
    skipped_tags: list[FieldViolation] = field(default_factory=list)
    experiments: set[str] = field(default_factory=set)

    def valid_tags(self, at: str, tags: Mapping[str, Any]) -> dict[str, str]:
        """``tags`` as tag text, without those breaking the limits (remembered as skipped)."""
        out: dict[str, str] = {}
        for key, raw in tags.items():
            value = tag_value(raw)
            checks = Violations()
            checks.tag(f"{at}[{key[:50]}]", key, f"{at}[{key[:50]}]", value)
            if checks.items:
                self.skipped_tags.extend(checks.items)
            else:
                out[key] = value
        return out


def _header_experiment(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == EXPERIMENT_HEADER and value:  # an empty header counts as none
            return str(value)
    return None


def _resource_experiment(resource_attrs: Mapping[str, Any], at: str) -> str:
    raw = resource_attrs.get(EXPERIMENT_ATTRIBUTE)
    if raw is None:
        raise InvalidArgument(
            "EXPERIMENT_REQUIRED",
            f"no experiment: send the request metadata {EXPERIMENT_HEADER!r} "
            f"or the resource attribute {EXPERIMENT_ATTRIBUTE!r}",
            [FieldViolation(EXPERIMENT_HEADER, "required (or the resource attribute mlflow.experimentId)")],
        )
    experiment_id = tag_value(raw)
    parse_experiment_id(experiment_id, f"{at}.attributes[{EXPERIMENT_ATTRIBUTE}]")
    return experiment_id


def _trace_tags(span_attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The root span's ``mlflow.traceTag.<k>`` attributes, as ``<k>``."""
    n = len(TRACE_TAG_PREFIX)
    return {k[n:]: v for k, v in span_attributes.items() if k.startswith(TRACE_TAG_PREFIX) and len(k) > n}


def _collect(resources: list[PlainResource], header_experiment: str | None) -> _Batch:
    batch = _Batch()
    for r, (resource_attrs, spans) in enumerate(resources):
        at = f"resource_spans[{r}]"
        if not spans:
            continue
        experiment_id = header_experiment or _resource_experiment(resource_attrs, f"{at}.resource")
        batch.experiments.add(experiment_id)
        resource_tags = batch.valid_tags(
            f"{at}.resource.attributes",
            {k: v for k, v in resource_attrs.items() if not k.startswith(UNTAGGED_RESOURCE_PREFIXES)},
        )
        trace_ids: set[str] = set()
        records = batch.records[experiment_id]
        for span in spans:
            span_at = f"{at}.scope_spans[{span[0]}].spans[{span[1]}]"
            converted = convert(span, batch.rejected, span_at)
            if converted is None:
                batch.rejected_spans += 1
                continue
            record = converted.record
            records.append(record)
            trace_ids.add(record.trace_id)
            if not record.parent_span_id:
                trace_tags = _trace_tags(converted.attributes)
                if trace_tags:
                    batch.root_tags[record.trace_id] = batch.valid_tags(f"{span_at}.attributes", trace_tags)
        for trace_id in trace_ids:
            batch.resource_tags[trace_id].update(resource_tags)
    return batch


def _partial_success(batch: _Batch, total: int) -> otlp_pb.ExportTracePartialSuccess | None:
    parts: list[str] = []
    if batch.rejected_spans:
        problems = batch.rejected.items
        quoted = "; ".join(f"{v.field}: {v.description}" for v in problems[:_QUOTED_PROBLEMS])
        more = f"; and {len(problems) - _QUOTED_PROBLEMS} more" if len(problems) > _QUOTED_PROBLEMS else ""
        parts.append(f"{batch.rejected_spans} of {total} spans rejected: {quoted}{more}")
    if batch.skipped_tags:
        skipped = batch.skipped_tags
        quoted = "; ".join(f"{v.field}: {v.description}" for v in skipped[:_QUOTED_PROBLEMS])
        more = f"; and {len(skipped) - _QUOTED_PROBLEMS} more" if len(skipped) > _QUOTED_PROBLEMS else ""
        parts.append(f"{len(skipped)} tags left out: {quoted}{more}")
    if not parts:
        return None
    return otlp_pb.ExportTracePartialSuccess(rejected_spans=batch.rejected_spans, error_message=". ".join(parts))


class OtlpTraceServicer(otlp_grpc.TraceServiceServicer):
    """``opentelemetry.proto.collector.trace.v1.TraceService``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def Export(self, request: bytes, context: grpc.ServicerContext) -> Any:
        """``request``: the serialized ExportTraceServiceRequest (registered without a parse)."""
        resources = plain_spans(request)
        total = sum(len(spans) for _, spans in resources)
        if total > limits.SPANS_PER_CALL_MAX:
            raise InvalidArgument.field(
                "resource_spans",
                f"at most {limits.SPANS_PER_CALL_MAX} spans per call (got {total}): lower the exporter's batch size",
            )
        header = _header_experiment(context)
        if header is not None:
            parse_experiment_id(header, EXPERIMENT_HEADER)
        batch = _collect(resources, header)
        stored = sum(len(r) for r in batch.records.values())
        if stored:
            now = now_ms()

            def tx(uow: UnitOfWork) -> None:
                created: set[str] = set()
                for experiment_id in sorted(batch.records):
                    created |= uow.traces.log_spans(experiment_id, batch.records[experiment_id], now).created
                set_trace_tags(uow, batch.root_tags, defaults=batch.resource_tags, created=created)

            self.db.write(tx)
        elif batch.experiments:  # every span rejected: still say if the experiment is wrong
            self.db.write(lambda uow: [uow.experiments.require_active(e) for e in sorted(batch.experiments)])
        response = otlp_pb.ExportTraceServiceResponse()
        partial = _partial_success(batch, total)
        if partial is not None:
            response.partial_success.CopyFrom(partial)
            log.warning(
                "otlp export partly rejected",
                extra={"rejected_spans": partial.rejected_spans, "problem": partial.error_message[:500]},
            )
        return response


def add_to_server(db: Database, server: grpc.Server) -> None:
    """The service, its request not parsed by grpc: ``plain_spans`` reads its bytes."""
    export: Any = grpc.unary_unary_rpc_method_handler(
        OtlpTraceServicer(db).Export,
        request_deserializer=None,  # bytes as they came
        response_serializer=otlp_pb.ExportTraceServiceResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, {"Export": export}),))
