"""The merge rules of SPEC §5.3, applied in Python to one call's records.

``store/repositories/dataset_records.py`` loads the current rows of the call's identities in
one SELECT, runs every request record through ``MergePlan.add`` in order, and writes what
``MergePlan.finish`` decides (and ``MergePlan.build`` makes into rows) with a constant number
of set-based statements. Rules:

* new inputs: a new record. Source inferred when absent: HUMAN with non-empty expectations,
  else CODE. ``created_by`` = ``last_updated_by`` = its ``mlflow.user`` tag;
* existing inputs: ``outputs`` replaced when given (an explicit null clears them),
  ``expectations`` and ``tags`` merged key by key; ``source``, ``inputs``, ``create_time``
  and ``created_by`` never change; ``last_updated_by`` becomes the ``mlflow.user`` tag of a
  record that changed it, when it carries one;
* records with equal inputs within the call merge in order, each one's outcome relative to
  the state the earlier ones left;
* a record is written (a new row version) only when its content hash at the end of the call
  differs from its stored one;
* shortcut: a request record whose ``fresh_content`` (the content it would give a new record)
  hashes to the stored content hash changes nothing (UNCHANGED) — the repository then need
  not fetch or parse that content, when the identity comes once in the call.

Values compare as JSON (``same``): ``1`` and ``true`` differ, although Python says they are equal.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from store.canonical import dumps, sha256_hex
from store.dataset_domain import CREATED, UNCHANGED, UPDATED, USER_TAG, RecordCodec, RecordInput, RecordMeta
from store.dataset_stats import ProfileDelta
from store.errors import ResourceExhausted
from store.limits import TAGS_PER_ENTITY_MAX

HASH_MOD = 1 << 256


class RecordIds:
    """The ids of the records one call creates, ascending: ``dr-``, then 12 hex digits of the
    call's time (epoch milliseconds), 14 random hex digits of the call and a 6-digit sequence
    number. New ids land at the right edge of the index on ``(dataset_id, dataset_record_id)``
    in order, where random ones landed on a random page each: a COPY of 1,000 benchmark records
    took 14.0 ms instead of 16.7 (median of 12 alternated runs). Two calls of the same
    millisecond collide only if their 56 random bits do."""

    def __init__(self, now_ms: int) -> None:
        self._time = f"dr-{now_ms & 0xFFFFFFFFFFFF:012x}"
        self._prefix = self._time + secrets.token_hex(7)
        self._next = 0

    def __call__(self) -> str:
        n = self._next
        if n == 0x1000000:  # beyond 16**6 records in one call: random digits anew
            self._prefix, n = self._time + secrets.token_hex(7), 0
        self._next = n + 1
        return f"{self._prefix}{n:06x}"


def same(a: Any, b: Any) -> bool:
    """Equality of two normalized JSON values as JSON (types count)."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict or kind is list:
        return bool(a == b) and dumps(a) == dumps(b)
    return bool(a == b)


@dataclass(slots=True)
class Stored:
    """A current record row, as the merge needs it (``content``: see ``content_text``)."""

    row_id: Any  # the handle the repository closes it by
    position: int
    dataset_record_id: str
    content_hash: str
    content: dict[str, Any] | None  # None: not fetched (it is what the call's one record for it would create)
    create_time_ms: int
    created_by: str | None
    last_updated_by: str | None
    proto: bytes

    @property
    def parts(self) -> dict[str, Any]:
        """The parsed content (fetched whenever the merge needs it)."""
        if self.content is None:
            raise AssertionError(f"the content of {self.dataset_record_id} was not fetched")
        return self.content

    @property
    def has_outputs(self) -> bool:
        return "o" in self.parts

    @property
    def outputs(self) -> Any:
        return self.parts.get("o")


@dataclass(slots=True)
class Work:
    """One record's state while the call's records are applied."""

    input_hash: str
    inputs_text: str
    inputs: dict[str, Any]
    stored: Stored | None
    record_id: str
    position: int
    has_outputs: bool
    outputs: Any
    expectations: dict[str, Any]
    tags: dict[str, str]
    source_type: str
    source_data: dict[str, Any]
    create_time_ms: int
    created_by: str | None
    last_updated_by: str | None
    origins: list[object] = field(default_factory=list)
    touched: bool = False
    content: str | None = None  # a created record's content_text and its hash, while only its
    content_hash: str | None = None  # first request record made it (``len(origins) == 1``)


@dataclass
class Finished:
    """What the call writes."""

    close_rows: list[Any]  # the row_id of each stored row to close
    rows: list[tuple[Any, ...]]  # in ROW_COLUMNS order (store/repositories/dataset_records.py)
    delta: ProfileDelta
    sum_delta: int  # to add (mod 2**256) to the dataset's content sum
    added: int
    updated: int
    author: str | None
    version: int = 0  # the version the rows are written as
    # The records to write, with their content and its hash: ``MergePlan.build`` makes their
    # ``rows`` and ``delta``.
    writes: list[tuple[Work, str, str]] = field(default_factory=list)


def content_text(w: Work) -> str:
    """A record's stored content: the canonical JSON of {"e": expectations, "i": inputs,
    "o": outputs (absent when none), "s": {"d": source data, "t": source type}, "t": tags}."""
    outputs = ',"o":' + dumps(w.outputs) if w.has_outputs else ""
    source = f'{{"d":{dumps(w.source_data)},"t":{dumps(w.source_type)}}}'
    return f'{{"e":{dumps(w.expectations)},"i":{w.inputs_text}{outputs},"s":{source},"t":{dumps(w.tags)}}}'


def fresh_content(rec: RecordInput, inputs_text: str) -> str:
    """The content (``content_text``) ``rec`` gives a record it creates."""
    expectations = rec.expectations or {}
    source_type = rec.source_type or ("HUMAN" if expectations else "CODE")
    outputs = ',"o":' + dumps(rec.outputs) if rec.has_outputs and rec.outputs is not None else ""
    source = f'{{"d":{dumps(rec.source_data)},"t":{dumps(source_type)}}}'
    return f'{{"e":{dumps(expectations)},"i":{inputs_text}{outputs},"s":{source},"t":{dumps(rec.tags)}}}'


class MergePlan:
    def __init__(self, dataset_id: str, current: dict[str, Stored], last_position: int, now_ms: int) -> None:
        self.dataset_id = dataset_id
        self.current = current
        self.position = last_position
        self.now_ms = now_ms
        self.works: dict[str, Work] = {}
        self.author: str | None = None
        self._record_id = RecordIds(now_ms)

    def add(self, rec: RecordInput, input_hash: str, inputs_text: str, fresh: tuple[str, str]) -> tuple[str, str]:
        """Apply one request record; its (dataset_record_id, outcome). ``fresh``: the record's
        ``fresh_content`` and its hash."""
        user = rec.tags.get(USER_TAG)
        if user is not None:
            self.author = user
        work = self.works.get(input_hash)
        if work is None:
            stored = self.current.get(input_hash)
            if stored is None:
                work = self.works[input_hash] = self._create(rec, input_hash, inputs_text, user)
                work.content, work.content_hash = fresh
                return work.record_id, CREATED
            if stored.content_hash == fresh[1]:
                # The record as it would be created is the stored one: merging it changes nothing.
                if stored.content is not None:  # None: the caller knows it comes once in the call
                    self.works[input_hash] = _from_stored(stored, input_hash, inputs_text, rec.inputs)
                return stored.dataset_record_id, UNCHANGED
            work = self.works[input_hash] = _from_stored(stored, input_hash, inputs_text, rec.inputs)
        changed = self._merge(work, rec)
        if changed:
            work.touched = True
            work.origins.append(rec.origin)
            if user is not None:
                work.last_updated_by = user
        return work.record_id, UPDATED if changed else UNCHANGED

    def _create(self, rec: RecordInput, input_hash: str, inputs_text: str, user: str | None) -> Work:
        self.position += 1
        expectations = dict(rec.expectations or {})
        _check_tags(rec.tags)
        return Work(
            input_hash=input_hash,
            inputs_text=inputs_text,
            inputs=rec.inputs,
            stored=None,
            record_id=self._record_id(),
            position=self.position,
            has_outputs=rec.has_outputs and rec.outputs is not None,
            outputs=rec.outputs if rec.has_outputs else None,
            expectations=expectations,
            tags=dict(rec.tags),
            source_type=rec.source_type or ("HUMAN" if expectations else "CODE"),
            source_data=rec.source_data,
            create_time_ms=self.now_ms,
            created_by=user,
            last_updated_by=user,
            origins=[rec.origin],
            touched=True,
        )

    @staticmethod
    def _merge(work: Work, rec: RecordInput) -> bool:
        changed = False
        if rec.has_outputs:
            if rec.outputs is None:
                if work.has_outputs:
                    work.has_outputs, work.outputs, changed = False, None, True
            elif not work.has_outputs or not same(work.outputs, rec.outputs):
                work.has_outputs, work.outputs, changed = True, rec.outputs, True
        if rec.expectations:
            held, copied = work.expectations, False
            for key, value in rec.expectations.items():
                if key not in held or not same(held[key], value):
                    if not copied:  # never alter the stored row's dict: the profile needs it
                        work.expectations = held = dict(held)
                        copied = True
                    held[key] = value
                    changed = True
        if rec.tags:
            tags = work.tags
            if any(tags.get(k) != v for k, v in rec.tags.items()):
                work.tags = tags = {**tags, **rec.tags}
                _check_tags(tags)
                changed = True
        return changed

    def finish(self, version: int) -> Finished:
        """What the call writes as ``version``: the records whose content changed, the stored
        rows they replace (to close), the counts and the content sum's change. Their rows and
        profile delta come from ``build``, which the repository runs while PostgreSQL closes
        the replaced rows."""
        out = Finished([], [], ProfileDelta(), 0, 0, 0, self.author, version)
        for work in self.works.values():
            if not work.touched:
                continue
            if work.content is not None and work.content_hash is not None and len(work.origins) == 1:
                content, content_hash = work.content, work.content_hash
            else:
                content = content_text(work)
                content_hash = sha256_hex(content)
            stored = work.stored
            if stored is not None and content_hash == stored.content_hash:
                continue  # changed and changed back within the call
            out.sum_delta += int(content_hash, 16)
            if stored is None:
                out.added += 1
            else:
                out.updated += 1
                out.sum_delta -= int(stored.content_hash, 16)
                out.close_rows.append(stored.row_id)
            out.writes.append((work, content, content_hash))
        out.sum_delta %= HASH_MOD
        return out

    def build(self, done: Finished, codec: RecordCodec, track_fields: bool) -> None:
        """``done``'s rows, with the records as reads return them (``codec``), and with
        ``track_fields`` its profile delta."""
        delta = done.delta
        for work, content, content_hash in done.writes:
            meta = RecordMeta(
                self.dataset_id, work.record_id, work.source_type, work.create_time_ms, self.now_ms,
                work.created_by, work.last_updated_by,
            )  # fmt: skip
            stored = work.stored
            if stored is None:
                proto = codec.created(work.origins[0], meta)
                patches = work.origins[1:]
                if track_fields:
                    delta.add("inputs", work.inputs)
                    delta.add("expectations", work.expectations)
                    if work.has_outputs:
                        delta.add("outputs", work.outputs)
            else:
                proto, patches = stored.proto, work.origins
                if track_fields:
                    _profile_update(delta, stored, work)
            for patch in patches:
                proto = codec.merged(proto, patch, meta)
            row = (
                self.dataset_id, work.position, done.version, work.record_id, work.input_hash, content, content_hash,
                work.create_time_ms, self.now_ms, work.created_by, work.last_updated_by, proto,
            )  # fmt: skip
            done.rows.append(row)


def _from_stored(stored: Stored, input_hash: str, inputs_text: str, inputs: dict[str, Any]) -> Work:
    parts = stored.parts
    return Work(
        input_hash=input_hash,
        inputs_text=inputs_text,
        inputs=inputs,
        stored=stored,
        record_id=stored.dataset_record_id,
        position=stored.position,
        has_outputs=stored.has_outputs,
        outputs=stored.outputs,
        expectations=parts["e"],
        tags=parts["t"],
        source_type=parts["s"]["t"],
        source_data=parts["s"]["d"],
        create_time_ms=stored.create_time_ms,
        created_by=stored.created_by,
        last_updated_by=stored.last_updated_by,
    )


def _profile_update(delta: ProfileDelta, stored: Stored, work: Work) -> None:
    if stored.has_outputs != work.has_outputs or not same(stored.outputs, work.outputs):
        if stored.has_outputs:
            delta.remove("outputs", stored.outputs)
        if work.has_outputs:
            delta.add("outputs", work.outputs)
    if not same(stored.parts["e"], work.expectations):
        delta.remove("expectations", stored.parts["e"])
        delta.add("expectations", work.expectations)


def _check_tags(tags: dict[str, str]) -> None:
    if len(tags) > TAGS_PER_ENTITY_MAX:
        raise ResourceExhausted(
            "TOO_MANY_TAGS",
            f"a record would have {len(tags)} tags; at most {TAGS_PER_ENTITY_MAX}",
            {"limit": str(TAGS_PER_ENTITY_MAX)},
        )
