"""Labeling helpers of :class:`mlgenai.client.Client` (dicts in, dicts out): label schemas,
sessions, claiming and submitting labels.

A session comes back as a dict with the fields of ``mlgenai.v1.LabelingSession`` (``state``
"OPEN" / "CLOSED", ``lease_duration`` a ``timedelta``, ``progress`` a dict of counts); an item
with those of ``LabelingItem`` (``state`` "PENDING", "IN_PROGRESS", "COMPLETED" or "SKIPPED",
``source`` ``{"trace_id": ..., "dataset_record": None}`` or the other way round).

>>> s = client.create_labeling_session(exp_id, "review", [schema_id], raters_per_item=3)
>>> client.add_items(s["labeling_session_id"], trace_ids=trace_ids)["added"]
10
>>> claim = client.claim_next_item(s["labeling_session_id"], "alice")
>>> client.submit_labels(s["labeling_session_id"], claim["item"]["item_id"], "alice", {schema_id: True})
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from google.protobuf import duration_pb2, field_mask_pb2

from mlgenai.client.convert import to_dict, to_value
from mlgenai.client.paging import iter_pages
from mlgenai.v1 import labeling_service_pb2 as svc, labeling_session_pb2 as lpb
from mlgenai.v1.labeling_service_pb2_grpc import LabelingServiceStub

ITEMS_PER_CALL = 1_000  # sources per AddItems, item ids per RemoveItems
_SESSION_STATES = {"OPEN": lpb.LABELING_SESSION_STATE_OPEN, "CLOSED": lpb.LABELING_SESSION_STATE_CLOSED}
_ITEM_STATES = {
    "PENDING": lpb.LABELING_ITEM_STATE_PENDING,
    "IN_PROGRESS": lpb.LABELING_ITEM_STATE_IN_PROGRESS,
    "COMPLETED": lpb.LABELING_ITEM_STATE_COMPLETED,
    "SKIPPED": lpb.LABELING_ITEM_STATE_SKIPPED,
}


def _duration(value: dt.timedelta | float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromTimedelta(value if isinstance(value, dt.timedelta) else dt.timedelta(seconds=value))
    return out


def _state(name: str, states: Mapping[str, int]) -> int:
    number = states.get(name.upper())
    if number is None:
        raise ValueError(f"state must be one of {', '.join(states)}, got {name!r}")
    return number


def label(schema_id: str, value: Any, comment: str = "") -> lpb.Label:
    """One answer for ``submit_labels`` (a ``Label`` message)."""
    return lpb.Label(schema_id=schema_id, value=to_value(value), comment=comment)


class LabelingMixin:
    labeling: LabelingServiceStub

    # -- sessions --------------------------------------------------------------------------

    def create_labeling_session(
        self,
        experiment_id: str,
        name: str,
        label_schema_ids: Sequence[str],
        *,
        raters_per_item: int = 1,
        instructions: str = "",
        assigned_users: Sequence[str] = (),
        dataset_id: str = "",
        lease_duration: dt.timedelta | float | None = None,
    ) -> dict[str, Any]:
        """Create an OPEN session; ``lease_duration`` (default 10 minutes) in seconds or a timedelta."""
        session = lpb.LabelingSession(
            experiment_id=experiment_id,
            name=name,
            label_schema_ids=list(label_schema_ids),
            raters_per_item=raters_per_item,
            instructions=instructions,
            assigned_users=list(assigned_users),
            dataset_id=dataset_id,
        )
        if lease_duration is not None:
            session.lease_duration.CopyFrom(_duration(lease_duration))
        return to_dict(self.labeling.CreateLabelingSession(svc.CreateLabelingSessionRequest(labeling_session=session)))

    def get_labeling_session(self, labeling_session_id: str) -> dict[str, Any]:
        request = svc.GetLabelingSessionRequest(labeling_session_id=labeling_session_id)
        return to_dict(self.labeling.GetLabelingSession(request))

    def list_labeling_sessions(self, experiment_id: str, *, page_size: int = 0) -> Iterator[dict[str, Any]]:
        """The experiment's sessions, newest first, fetching pages as the iterator advances."""
        request = svc.ListLabelingSessionsRequest(experiment_id=experiment_id, page_size=page_size)
        return (to_dict(s) for s in iter_pages(self.labeling.ListLabelingSessions, request, "labeling_sessions"))

    def update_labeling_session(self, labeling_session_id: str, **fields: Any) -> dict[str, Any]:
        """Change the given fields: ``name``, ``instructions``, ``assigned_users``,
        ``lease_duration`` (seconds or timedelta), ``dataset_id``, ``state`` ("OPEN"/"CLOSED"),
        ``label_schema_ids``, ``raters_per_item``."""
        session = lpb.LabelingSession(labeling_session_id=labeling_session_id)
        for name, value in fields.items():
            if name == "lease_duration":
                session.lease_duration.CopyFrom(_duration(value))
            elif name == "state":
                session.state = _state(value, _SESSION_STATES)  # type: ignore[assignment]
            elif name in ("assigned_users", "label_schema_ids"):
                getattr(session, name).extend(value)
            elif name in ("name", "instructions", "dataset_id", "raters_per_item"):
                setattr(session, name, value)
            else:
                raise TypeError(f"update_labeling_session() got an unexpected field {name!r}")
        if not fields:
            return self.get_labeling_session(labeling_session_id)
        mask = field_mask_pb2.FieldMask(paths=sorted(fields))
        request = svc.UpdateLabelingSessionRequest(labeling_session=session, update_mask=mask)
        return to_dict(self.labeling.UpdateLabelingSession(request))

    def close_labeling_session(self, labeling_session_id: str) -> dict[str, Any]:
        return self.update_labeling_session(labeling_session_id, state="CLOSED")

    def reopen_labeling_session(self, labeling_session_id: str) -> dict[str, Any]:
        return self.update_labeling_session(labeling_session_id, state="OPEN")

    def delete_labeling_session(self, labeling_session_id: str, *, allow_missing: bool = False) -> None:
        request = svc.DeleteLabelingSessionRequest(labeling_session_id=labeling_session_id, allow_missing=allow_missing)
        self.labeling.DeleteLabelingSession(request)

    # -- items -----------------------------------------------------------------------------

    def add_items(
        self,
        labeling_session_id: str,
        *,
        trace_ids: Sequence[str] = (),
        records: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        """Add traces and dataset records (``(dataset_id, record_id)`` pairs), in batches of
        1,000; returns ``{"items": [...], "added": n}`` (existing items for sources already there)."""
        sources = [lpb.LabelingItemSource(trace_id=t) for t in trace_ids]
        sources += [
            lpb.LabelingItemSource(dataset_record=lpb.DatasetRecordRef(dataset_id=d, record_id=r)) for d, r in records
        ]
        items: list[dict[str, Any]] = []
        added = 0
        for start in range(0, max(len(sources), 1), ITEMS_PER_CALL):
            request = svc.AddItemsRequest(
                labeling_session_id=labeling_session_id, sources=sources[start : start + ITEMS_PER_CALL]
            )
            response = self.labeling.AddItems(request)
            items += [to_dict(i) for i in response.items]
            added += response.added
        return {"items": items, "added": added}

    def remove_items(self, labeling_session_id: str, item_ids: Sequence[str]) -> int:
        """Remove items (with their leases and submissions), in batches of 1,000; the count."""
        removed = 0
        for start in range(0, max(len(item_ids), 1), ITEMS_PER_CALL):
            request = svc.RemoveItemsRequest(
                labeling_session_id=labeling_session_id, item_ids=list(item_ids[start : start + ITEMS_PER_CALL])
            )
            removed += self.labeling.RemoveItems(request).removed
        return removed

    def list_items(
        self, labeling_session_id: str, *, states: Sequence[str] = (), rater: str = "", page_size: int = 0
    ) -> Iterator[dict[str, Any]]:
        """The session's items in the order they were added, optionally only in ``states``
        ("PENDING", "IN_PROGRESS", "COMPLETED", "SKIPPED") or submitted by ``rater``."""
        request = svc.ListItemsRequest(
            labeling_session_id=labeling_session_id,
            states=[_state(s, _ITEM_STATES) for s in states],  # type: ignore[misc]
            rater=rater,
            page_size=page_size,
        )
        return (to_dict(i) for i in iter_pages(self.labeling.ListItems, request, "items"))

    # -- claims, submissions, skips -------------------------------------------------------

    def claim_next_item(
        self, labeling_session_id: str, rater: str, *, lease_duration: dt.timedelta | float | None = None
    ) -> dict[str, Any] | None:
        """``{"item": ..., "lease": ...}`` for the next item ``rater`` can label, or None."""
        request = svc.ClaimNextItemRequest(labeling_session_id=labeling_session_id, rater=rater)
        if lease_duration is not None:
            request.lease_duration.CopyFrom(_duration(lease_duration))
        response = self.labeling.ClaimNextItem(request)
        if not response.HasField("item"):
            return None
        return {"item": to_dict(response.item), "lease": to_dict(response.lease)}

    def submit_labels(
        self,
        labeling_session_id: str,
        item_id: str,
        rater: str,
        values: Mapping[str, Any],
        *,
        comments: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Submit ``values`` (schema id -> answer, one per schema of the session) with optional
        ``comments`` (schema id -> text); returns ``{"submission": ..., "item": ...}``."""
        comments = comments or {}
        request = svc.SubmitLabelsRequest(
            labeling_session_id=labeling_session_id,
            item_id=item_id,
            rater=rater,
            labels=[label(schema_id, value, comments.get(schema_id, "")) for schema_id, value in values.items()],
        )
        return to_dict(self.labeling.SubmitLabels(request))

    def skip_item(self, labeling_session_id: str, item_id: str, rater: str) -> dict[str, Any]:
        """Decline an item (idempotent); returns the item after the skip."""
        request = svc.SkipItemRequest(labeling_session_id=labeling_session_id, item_id=item_id, rater=rater)
        return to_dict(self.labeling.SkipItem(request).item)

    def list_submissions(
        self, labeling_session_id: str, *, item_id: str = "", rater: str = "", page_size: int = 0
    ) -> Iterator[dict[str, Any]]:
        """Submissions by item order then submission time, optionally of one item or rater."""
        request = svc.ListSubmissionsRequest(
            labeling_session_id=labeling_session_id, item_id=item_id, rater=rater, page_size=page_size
        )
        return (to_dict(s) for s in iter_pages(self.labeling.ListSubmissions, request, "submissions"))
