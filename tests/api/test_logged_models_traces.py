"""Traces name the model version that produced them (metadata ``mlflow.modelId``, SPEC §6).

Ingestion never depends on the model: a trace naming a model that does not exist is stored
and returned with that id as given; SearchTraces finds the traces of a real model by id.
"""

from __future__ import annotations

import pytest

from mlgenai.client import Client
from store.uow import Database
from tests.api.trace_support import Traces, sid, span, tid
from tests.helpers import count_rows

MODEL_KEY = "mlflow.modelId"


@pytest.fixture
def tr(client: Client) -> Traces:
    return Traces(client)


def test_a_trace_naming_an_unknown_model_is_stored_as_given(tr: Traces, database: Database) -> None:
    exp = tr.experiment("traces")
    unknown = "m-" + "9" * 32
    assert count_rows(database, "logged_models") == 0
    info = tr.start(trace_id=tid(1), experiment_id=exp, trace_metadata={MODEL_KEY: unknown})
    tr.log(exp, span(tid(1), sid(1), name="root"))
    tr.end(tid(1))
    assert info.model_id == unknown
    stored = tr.info(tid(1))
    assert stored.model_id == unknown and stored.trace_metadata[MODEL_KEY] == unknown
    assert tr.search_ids([exp], f"model_id = '{unknown}'") == [tid(1)]
    assert count_rows(database, "logged_models") == 0  # nothing was made up for it


def test_a_malformed_model_id_is_kept_too(tr: Traces) -> None:
    exp = tr.experiment("traces")
    tr.start(trace_id=tid(1), experiment_id=exp, trace_metadata={MODEL_KEY: "my-model/3"})
    assert tr.info(tid(1)).model_id == "my-model/3"


def test_search_traces_by_the_id_of_a_real_model(client: Client, tr: Traces) -> None:
    exp = tr.experiment("traces")
    v1 = client.create_logged_model(exp, "support-bot")["model_id"]
    v2 = client.create_logged_model(exp, "support-bot")["model_id"]
    for n, model_id in [(1, v1), (2, v2), (3, v1)]:
        tr.start(trace_id=tid(n), experiment_id=exp, trace_metadata={MODEL_KEY: model_id})
        tr.log(exp, span(tid(n), sid(1), name="root", start=n * 100))
    tr.start(trace_id=tid(4), experiment_id=exp)  # no model
    assert sorted(tr.search_ids([exp], f"model_id = '{v1}'")) == [tid(1), tid(3)]
    assert tr.search_ids([exp], f"metadata.`{MODEL_KEY}` = '{v2}'") == [tid(2)]
    client.delete_logged_model(v1)  # deleted models keep their traces
    assert sorted(tr.search_ids([exp], f"model_id = '{v1}'")) == [tid(1), tid(3)]
    assert tr.info(tid(1)).model_id == v1
