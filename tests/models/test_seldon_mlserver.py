"""Seldon's protocol against a real Seldon Core microservice, and V2 against a real MLServer 1.7,
both on 127.0.0.1 in their own venvs (``tests/conftest.py``: ``seldon``, ``mlserver``); the
retry and binary-tensor fallback rules against loopback servers that fail on purpose."""

from __future__ import annotations

import re

import numpy as np
import psutil
import pytest
import requests
import torch

import xai_core
from served import MODEL
from test_remote import SIZE, X, handle, local_handle, scripted_server
from xai_core.demo import MEAN, STD
from xai_core.demo.model import load_demo_model
from xai_core.errors import ModelError
from xai_core.models.loading import ModelSpec, load_model
from xai_core.models.remote import _seldon_output, detect_protocol

COMMON = dict(activation="sigmoid", input_size=(SIZE, SIZE), mean=tuple(MEAN), std=tuple(STD))
EXPLAIN = dict(classes=[str(i) for i in range(10)], activation="sigmoid", mean=MEAN, std=STD, top_k=1,
               explainers=[{"type": "occlusion", "params": {"window": 16, "stride": 8}}, "random"],
               metrics=[{"type": "deletion_auc", "params": {"steps": 4}}], progress=False, fast_forward="off")


def listens_on_loopback_only(pid: int) -> None:
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    listening = [c.laddr for p in procs for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening and all(a.ip in ("127.0.0.1", "::ffff:127.0.0.1") for a in listening), listening


def test_seldon_protocol_is_detected_and_answers_the_local_logits(seldon):
    url = seldon.url("seldon")
    assert detect_protocol(url) == "seldon" and detect_protocol("http://h/api/v0.1/predictions") == "seldon"
    h = load_model(ModelSpec(url=url, **COMMON), 10)
    assert h.kind == "remote (Seldon)"
    np.testing.assert_allclose(h.logits(X).numpy(), local_handle().logits(X).numpy(), atol=1e-5)
    listens_on_loopback_only(seldon.pid)


def test_seldon_refuses_the_other_protocols_and_its_tensor_answers_are_read(seldon):
    url = seldon.url("seldon")
    for protocol in ("v1", "v2"):  # what every protocol setting did before: HTTP 400 from the microservice
        with pytest.raises(ModelError, match="answered HTTP 400"):
            load_model(ModelSpec(url=url, protocol=protocol, **COMMON), 10)
    x = ((X.numpy() - np.asarray(MEAN, np.float32).reshape(1, 3, 1, 1))
         / np.asarray(STD, np.float32).reshape(1, 3, 1, 1))
    nd = requests.post(url, json={"data": {"ndarray": x.tolist()}}, timeout=60).json()
    tensor = requests.post(url, json={"data": {"tensor": {"shape": list(x.shape), "values": x.ravel().tolist()}}},
                           timeout=60).json()
    assert "tensor" in tensor["data"] and "ndarray" in nd["data"]
    np.testing.assert_allclose(_seldon_output(tensor), _seldon_output(nd), atol=1e-6)


def test_a_seldon_served_model_explained_end_to_end(seldon, tmp_path):
    """xai_core.explain on the URL: maps equal the local PyTorch model's."""
    images = (X.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    remote = xai_core.explain(seldon.url("seldon"), list(images), out=tmp_path / "seldon", **EXPLAIN)
    local = xai_core.explain(load_demo_model(), list(images), out=tmp_path / "local", **EXPLAIN)
    assert remote.manifest["model"]["protocol"] == "seldon"
    np.testing.assert_allclose(np.stack(remote.samples["probs"]), np.stack(local.samples["probs"]), atol=1e-5)
    for row in local.labels.itertuples():
        np.testing.assert_allclose(remote.map(row.sample_id, row.label, "occlusion"),
                                   local.map(row.sample_id, row.label, "occlusion"), atol=1e-5)
    np.testing.assert_allclose(remote.scores["score"], local.scores["score"], atol=1e-5)


def test_mlserver_v2_json_and_binary_tensors_fall_back_to_json(mlserver, tmp_path):
    url = mlserver.url("v2")
    h = load_model(ModelSpec(url=url, **COMMON), 10)
    assert h.metadata["inputs"][0]["name"] == "pixels" and h.transport is None
    np.testing.assert_allclose(h.logits(X).numpy(), local_handle().logits(X).numpy(), atol=1e-5)
    # MLServer's REST server has no binary tensor extension: the first request says so, JSON is used
    b = load_model(ModelSpec(url=url, binary_data=True, **COMMON), 10)
    assert b.binary_data is False and b.transport["binary_data"] is False and b.transport["requested"]
    # FastAPI refuses the body (422); its error handler then fails to echo undecodable bytes (500,
    # identical on a retry: given up after the second, not retried three times)
    assert re.search(r"refused a binary request .*HTTP (422|500 twice with the same error)", b.transport["reason"])
    np.testing.assert_allclose(b.logits(X).numpy(), h.logits(X).numpy(), atol=0)
    images = (X.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    run = xai_core.explain(url, list(images), out=tmp_path / "mls", binary_data=True, **EXPLAIN)
    assert run.manifest["model"]["transport"]["binary_data"] is False  # the manifest says how it ran
    assert run.manifest["model"]["server_model"]["name"] == MODEL
    listens_on_loopback_only(mlserver.pid)


def test_an_identical_500_is_not_retried_and_the_binary_hint_is_given():
    undecodable = (500, '{"error": "cannot decode the request body"}')
    with scripted_server([undecodable]) as (base, hits):
        with pytest.raises(ModelError) as e:
            handle(base + f"/v2/models/{MODEL}/infer", retries=3).logits(X)
    assert len(hits) == 2  # not 4: the second identical answer ends it
    assert "answered HTTP 500 twice with the same error: cannot decode the request body" in str(e.value)
    with scripted_server([undecodable]) as (base, hits):  # binary and JSON both refused: the hint stays
        with pytest.raises(ModelError, match="may not support V2 binary tensors: set model.binary_data: false"):
            load_model(ModelSpec(url=base + f"/v2/models/{MODEL}/infer", binary_data=True, retries=3, **COMMON), 10)
    with scripted_server([(500, '{"error": "a"}'), (500, '{"error": "b"}'), "proxy"]) as (base, hits):
        with pytest.raises(ModelError, match="after 2 attempts: b"):  # different errors: retried as before
            handle(base + f"/v2/models/{MODEL}/infer", retries=1).logits(torch.zeros(1, 3, SIZE, SIZE))
