"""Labeling sessions and items: domain -> proto; requests -> store input (validated).

Every limit of ``labeling_session.proto`` is checked here, before the database; a request's
problems are collected and raised together (INVALID_ARGUMENT, INVALID_FIELD).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from google.protobuf import duration_pb2

from mlgenai.client.convert import from_value, to_value
from mlgenai.v1 import labeling_service_pb2 as pb, labeling_session_pb2 as lpb
from server.convert.assessments import _json_problem
from server.convert.common import timestamp
from server.convert.datasets import DATASET_ID, EXPERIMENT_ID, RECORD_ID, TRACE_ID
from server.field_masks import mask_paths
from server.validation import Violations
from store import labeling_domain as ld
from store.labeling_domain import Item, LabelInput, Lease, NewSession, Session, SessionChanges, Submission

SESSION_ID = re.compile(r"lbs-[0-9a-f]{32}")
ITEM_ID = re.compile(r"lsi-[0-9a-f]{32}")
SCHEMA_ID = re.compile(r"ls-[0-9a-f]{32}")

SESSION_STATES = {lpb.LABELING_SESSION_STATE_OPEN: ld.OPEN, lpb.LABELING_SESSION_STATE_CLOSED: ld.CLOSED}
SESSION_STATES_TO_PROTO = {v: k for k, v in SESSION_STATES.items()}
ITEM_STATES = {
    lpb.LABELING_ITEM_STATE_PENDING: ld.PENDING,
    lpb.LABELING_ITEM_STATE_IN_PROGRESS: ld.IN_PROGRESS,
    lpb.LABELING_ITEM_STATE_COMPLETED: ld.COMPLETED,
    lpb.LABELING_ITEM_STATE_SKIPPED: ld.SKIPPED,
}
ITEM_STATES_TO_PROTO = {v: k for k, v in ITEM_STATES.items()}
MUTABLE = frozenset(
    {"name", "instructions", "assigned_users", "lease_duration", "dataset_id", "state", "label_schema_ids",
     "raters_per_item"}
)  # fmt: skip
OUTPUT_ONLY = frozenset({"labeling_session_id", "create_time", "update_time", "progress"})


# -- domain -> proto ---------------------------------------------------------------------------


def duration(seconds: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds)


def session_to_proto(s: Session) -> lpb.LabelingSession:
    p = s.progress
    return lpb.LabelingSession(
        labeling_session_id=s.labeling_session_id,
        experiment_id=s.experiment_id,
        name=s.name,
        instructions=s.instructions,
        label_schema_ids=list(s.label_schema_ids),
        assigned_users=list(s.assigned_users),
        raters_per_item=s.raters_per_item,
        dataset_id=s.dataset_id,
        state=SESSION_STATES_TO_PROTO[s.state],  # type: ignore[arg-type]
        lease_duration=duration(s.lease_seconds),
        create_time=timestamp(s.create_time_ms),
        update_time=timestamp(s.update_time_ms),
        progress=lpb.LabelingProgress(
            total_items=p.total,
            pending_items=p.pending,
            in_progress_items=p.in_progress,
            completed_items=p.completed,
            skipped_items=p.skipped,
            submissions=p.submissions,
        ),
    )


def lease_to_proto(lease: Lease) -> lpb.ItemLease:
    return lpb.ItemLease(rater=lease.rater, expire_time=timestamp(lease.expire_time_ms))


def item_to_proto(item: Item) -> lpb.LabelingItem:
    source = item.source
    msg = lpb.LabelingItem(
        item_id=item.item_id,
        labeling_session_id=item.labeling_session_id,
        state=ITEM_STATES_TO_PROTO[item.state],  # type: ignore[arg-type]
        raters=list(item.raters),
        skipped_by=list(item.skipped_by),
        leases=[lease_to_proto(x) for x in item.leases],
        create_time=timestamp(item.create_time_ms),
        update_time=timestamp(item.update_time_ms),
    )
    if source.trace_id:
        msg.source.trace_id = source.trace_id
    else:
        msg.source.dataset_record.CopyFrom(
            lpb.DatasetRecordRef(dataset_id=source.dataset_id, record_id=source.record_id)
        )
    return msg


def submission_to_proto(s: Submission) -> lpb.SubmittedLabels:
    return lpb.SubmittedLabels(
        item_id=s.item_id,
        rater=s.rater,
        labels=[lpb.Label(schema_id=x.schema_id, value=to_value(x.value), comment=x.comment) for x in s.labels],
        assessment_ids=list(s.assessment_ids),
        submit_time=timestamp(s.submit_time_ms),
    )


# -- checks ------------------------------------------------------------------------------------


def check_id(checks: Violations, field: str, value: str, pattern: re.Pattern[str], what: str) -> None:
    if not value:
        checks.add(field, "required")
    elif not pattern.fullmatch(value):
        checks.add(field, f"{value[:50]!r} is not {what}")


def check_session_id(checks: Violations, value: str, field: str = "labeling_session_id") -> None:
    check_id(checks, field, value, SESSION_ID, "a labeling session id ('lbs-' + 32 lowercase hex characters)")


def check_item_id(checks: Violations, value: str, field: str = "item_id") -> None:
    check_id(checks, field, value, ITEM_ID, "an item id ('lsi-' + 32 lowercase hex characters)")


def check_rater(checks: Violations, value: str, field: str = "rater") -> None:
    checks.text(field, value, max_len=ld.RATER_MAX, required=True)


def lease_ms(checks: Violations, field: str, value: duration_pb2.Duration) -> int:
    """A lease duration in milliseconds: 10 s to 24 h."""
    if (value.seconds < 0 < value.nanos) or (value.nanos < 0 < value.seconds) or abs(value.nanos) >= 10**9:
        checks.add(field, "not a valid duration")
        return 0
    ms = value.seconds * 1000 + value.nanos // 1_000_000
    if not ld.LEASE_MIN_S * 1000 <= ms <= ld.LEASE_MAX_S * 1000:
        checks.add(field, f"{ld.LEASE_MIN_S} s to {ld.LEASE_MAX_S // 3600} h (got {ms / 1000:g} s)")
    return ms


def _schema_ids(checks: Violations, field: str, values: Sequence[str]) -> tuple[str, ...]:
    if not 1 <= len(values) <= ld.SCHEMAS_MAX:
        checks.add(field, f"1 to {ld.SCHEMAS_MAX} label schema ids (got {len(values)})")
    seen: set[str] = set()
    for i, value in enumerate(values[: ld.SCHEMAS_MAX + 1]):
        check_id(checks, f"{field}[{i}]", value, SCHEMA_ID, "a label schema id ('ls-' + 32 lowercase hex characters)")
        if value in seen:
            checks.add(f"{field}[{i}]", f"{value[:50]!r} is listed twice")
        seen.add(value)
    return tuple(values)


def _users(checks: Violations, field: str, values: Sequence[str]) -> tuple[str, ...]:
    if len(values) > ld.ASSIGNED_USERS_MAX:
        checks.add(field, f"at most {ld.ASSIGNED_USERS_MAX} users (got {len(values)})")
    seen: set[str] = set()
    for i, value in enumerate(values[: ld.ASSIGNED_USERS_MAX + 1]):
        check_rater(checks, value, f"{field}[{i}]")
        if value in seen:
            checks.add(f"{field}[{i}]", f"{value[:50]!r} is listed twice")
        seen.add(value)
    return tuple(values)


def _raters_per_item(checks: Violations, field: str, value: int) -> int:
    if not 1 <= value <= ld.RATERS_PER_ITEM_MAX:
        checks.add(field, f"1 to {ld.RATERS_PER_ITEM_MAX} (got {value})")
    return value


def _dataset(checks: Violations, field: str, value: str) -> str:
    if value and not DATASET_ID.fullmatch(value):
        checks.add(field, f"{value[:50]!r} is not a dataset id ('d-' + 32 lowercase hex characters)")
    return value


def _name(checks: Violations, field: str, value: str) -> str:
    checks.text(field, value, max_len=ld.SESSION_NAME_MAX, required=True, blank_ok=False)
    return value


def _instructions(checks: Violations, field: str, value: str) -> str:
    checks.text(field, value, max_len=ld.INSTRUCTIONS_MAX)
    return value


# -- requests -> store input -------------------------------------------------------------------


def new_session(request: pb.CreateLabelingSessionRequest) -> NewSession:
    s = request.labeling_session
    at = "labeling_session."
    checks = Violations()
    if not EXPERIMENT_ID.fullmatch(s.experiment_id) or int(s.experiment_id) >= 2**63:
        checks.add(at + "experiment_id", "required: an experiment id (a decimal integer)")
    lease = ld.LEASE_DEFAULT_S * 1000
    if s.HasField("lease_duration"):
        lease = lease_ms(checks, at + "lease_duration", s.lease_duration)
    new = NewSession(
        experiment_id=s.experiment_id,
        name=_name(checks, at + "name", s.name),
        label_schema_ids=_schema_ids(checks, at + "label_schema_ids", s.label_schema_ids),
        raters_per_item=_raters_per_item(checks, at + "raters_per_item", s.raters_per_item),
        instructions=_instructions(checks, at + "instructions", s.instructions),
        assigned_users=_users(checks, at + "assigned_users", s.assigned_users),
        dataset_id=_dataset(checks, at + "dataset_id", s.dataset_id),
        lease_seconds=lease // 1000,
    )
    checks.raise_if_any()
    return new


def session_changes(request: pb.UpdateLabelingSessionRequest) -> SessionChanges:
    s = request.labeling_session
    at = "labeling_session."
    checks = Violations()
    check_session_id(checks, s.labeling_session_id, at + "labeling_session_id")
    checks.raise_if_any()
    paths = mask_paths(request.update_mask, s, mutable=MUTABLE, output_only=OUTPUT_ONLY)
    state = None
    if "state" in paths:
        state = SESSION_STATES.get(s.state)
        if state is None:
            checks.add(at + "state", "OPEN or CLOSED")
    lease = None
    if "lease_duration" in paths:
        lease = lease_ms(checks, at + "lease_duration", s.lease_duration) // 1000
    changes = SessionChanges(
        name=_name(checks, at + "name", s.name) if "name" in paths else None,
        instructions=_instructions(checks, at + "instructions", s.instructions) if "instructions" in paths else None,
        assigned_users=_users(checks, at + "assigned_users", s.assigned_users) if "assigned_users" in paths else None,
        lease_seconds=lease,
        dataset_id=_dataset(checks, at + "dataset_id", s.dataset_id) if "dataset_id" in paths else None,
        state=state,
        label_schema_ids=(
            _schema_ids(checks, at + "label_schema_ids", s.label_schema_ids) if "label_schema_ids" in paths else None
        ),
        raters_per_item=(
            _raters_per_item(checks, at + "raters_per_item", s.raters_per_item) if "raters_per_item" in paths else None
        ),
    )
    checks.raise_if_any()
    return changes


def item_sources(request: pb.AddItemsRequest) -> list[ld.ItemSource]:
    checks = Violations()
    check_session_id(checks, request.labeling_session_id)
    if not 1 <= len(request.sources) <= ld.ITEMS_PER_CALL_MAX:
        checks.add("sources", f"1 to {ld.ITEMS_PER_CALL_MAX:,} sources (got {len(request.sources):,})")
    out = []
    for i, source in enumerate(request.sources[: ld.ITEMS_PER_CALL_MAX]):
        at = f"sources[{i}]"
        kind = source.WhichOneof("source")
        if kind == "trace_id":
            if not TRACE_ID.fullmatch(source.trace_id):
                checks.add(at + ".trace_id", f"{source.trace_id[:50]!r} is not a trace id ('tr-' + 32 lowercase hex)")
            out.append(ld.ItemSource(trace_id=source.trace_id))
        elif kind == "dataset_record":
            ref = source.dataset_record
            if not DATASET_ID.fullmatch(ref.dataset_id):
                checks.add(at + ".dataset_record.dataset_id", f"{ref.dataset_id[:50]!r} is not a dataset id")
            if not RECORD_ID.fullmatch(ref.record_id):
                checks.add(at + ".dataset_record.record_id", f"{ref.record_id[:50]!r} is not a dataset record id")
            out.append(ld.ItemSource(dataset_id=ref.dataset_id, record_id=ref.record_id))
        else:
            checks.add(at, "required: a trace_id or a dataset_record")
        if len(checks.items) >= 20:
            break
    checks.raise_if_any()
    return out


def item_ids(request: pb.RemoveItemsRequest) -> list[str]:
    checks = Violations()
    check_session_id(checks, request.labeling_session_id)
    if not 1 <= len(request.item_ids) <= ld.ITEMS_PER_CALL_MAX:
        checks.add("item_ids", f"1 to {ld.ITEMS_PER_CALL_MAX:,} item ids (got {len(request.item_ids):,})")
    bad = [(i, v) for i, v in enumerate(request.item_ids[: ld.ITEMS_PER_CALL_MAX]) if not ITEM_ID.fullmatch(v)]
    for i, value in bad[:10]:
        checks.add(f"item_ids[{i}]", f"{value[:50]!r} is not an item id ('lsi-' + 32 lowercase hex characters)")
    checks.raise_if_any()
    return list(request.item_ids)


def item_states(checks: Violations, values: Sequence[int]) -> list[str]:
    out = []
    for i, value in enumerate(values):
        state = ITEM_STATES.get(value)  # type: ignore[call-overload]
        if state is None:
            checks.add(f"states[{i}]", "PENDING, IN_PROGRESS, COMPLETED or SKIPPED")
        else:
            out.append(state)
    return out


def labels(checks: Violations, values: Sequence[lpb.Label]) -> list[LabelInput]:
    """The labels of a submission (their values against the schemas are checked by the store)."""
    if not values:
        checks.add("labels", "required: one label per schema of the session")
    if len(values) > ld.SCHEMAS_MAX:
        checks.add("labels", f"at most {ld.SCHEMAS_MAX} labels (got {len(values)})")
        return []
    out = []
    for i, label in enumerate(values):
        at = f"labels[{i}]"
        check_id(checks, at + ".schema_id", label.schema_id, SCHEMA_ID, "a label schema id ('ls-' + 32 lowercase hex)")
        checks.text(at + ".comment", label.comment, max_len=ld.COMMENT_MAX)
        value = from_value(label.value) if label.HasField("value") else None
        problem = _json_problem(value)
        if problem is not None:
            checks.add(at + ".value", problem)
        out.append(LabelInput(label.schema_id, value, label.comment))
    return out
