"""Served models (KServe V1 / Open Inference Protocol V2) against a real KServe ModelServer on
127.0.0.1 (``conftest.kserve``), and retries, time-outs and errors against real loopback HTTP
servers that misbehave on purpose. No mocks: every request crosses a socket."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import ThreadingHTTPServer

import numpy as np
import pandas as pd
import psutil
import pytest
import requests
import torch
import yaml

from served import MODEL, JsonHandler, free_port
from xai_core.cli import main
from xai_core.config import config_from_dict
from xai_core.dashboard import list_runs, open_run
from xai_core.demo import MEAN, STD
from xai_core.errors import ConfigError, ModelError
from xai_core.explainers import EXPLAINERS
from xai_core.models.loading import ModelSpec, load_model
from xai_core.models.remote import RemoteHandle, detect_protocol, json_array
from xai_core.runner import run
from xai_core.summary import RunReader

SIZE = 64
PERTURBATION = ["occlusion", "rise", "lime", "kernel_shap", "anchors", "random"]
# Smoke parameters, lighter still for anchors: every pass of a served model crosses HTTP as JSON.
PARAMS = {**{n: dict(EXPLAINERS.get(n).smoke_params) for n in PERTURBATION},
          "anchors": {"max_passes": 48, "initial_samples": 8, "draw_size": 8}}
DEMO_MODEL = {"activation": "sigmoid", "input_size": [SIZE, SIZE], "mean": list(MEAN), "std": list(STD)}


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    from xai_core.demo.dataset import generate_demo_dataset

    out = tmp_path_factory.mktemp("demo3")
    return generate_demo_dataset(out, n_train=0, n_test=3, seed=0)


def run_dict(manifest, out, model: dict, **over) -> dict:
    cfg = {
        # torch everywhere, as in the server: KernelSHAP's smoke settings magnify 1e-7 differences
        # of another runtime (the ONNX fast path's equivalence is tested in test_fast.py)
        "model": {**DEMO_MODEL, "fast_forward": "off", **model},
        "dataset": {"kind": "manifest", "path": str(manifest), "split": "test"},
        "explainers": [{"type": n, "params": PARAMS[n]} for n in PERTURBATION],
        "metrics": [{"type": "deletion_auc", "params": {"steps": 4}},
                    {"type": "insertion_auc", "params": {"steps": 4}}, "pointing_game"],
        "labels": {"threshold": 0.5, "top_k": 1},
        "counterfactual": {"enabled": True, "layers": 1},
        "batch_size": 2,
        "seed": 0,
        "out": str(out),
    }
    cfg.update(over)
    return cfg


def local_handle():
    return load_model(ModelSpec(factory="xai_core.demo.model:load_demo_model", **{
        **DEMO_MODEL, "input_size": (SIZE, SIZE), "mean": tuple(MEAN), "std": tuple(STD)}), 10)


# --- the run of every model kind -------------------------------------------------------------


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return tmp_path_factory.mktemp("kinds")


@pytest.fixture(scope="module")
def pytorch_run(demo_data, logdir):
    cfg = config_from_dict(run_dict(demo_data, logdir / "pytorch",
                                    {"factory": "xai_core.demo.model:load_demo_model"}))
    return run(cfg, cfg.out, progress=False)


def _sorted(r: RunReader, name: str, key: list[str]) -> pd.DataFrame:
    return r.table(name).sort_values(key).reset_index(drop=True)


@pytest.mark.parametrize("kind", ["pytorch", "torchscript", "kserve-v1", "kserve-v2"])
def test_each_model_kind_runs_end_to_end_into_a_summary_the_dashboard_opens(
        kind, demo_data, logdir, pytorch_run, demo_torchscript, request):
    if kind == "pytorch":
        out = pytorch_run
    else:
        model = ({"torchscript": str(demo_torchscript)} if kind == "torchscript" else
                 {"url": request.getfixturevalue("kserve").url(kind[-2:]),
                  # the run's own chunks (explain_batch_size), as locally: same batches, same bits
                  "request_batch": 64})
        cfg = config_from_dict(run_dict(demo_data, logdir / kind, model))
        out = run(cfg, cfg.out, progress=False)

    r, ref = RunReader(out), RunReader(pytorch_run)
    assert r.status == "complete"
    opened = open_run(logdir, kind)
    assert opened.tables.n_samples == 3 and opened.tables.explainers == PERTURBATION
    info = {i.name: i for i in list_runs(logdir)}[kind]
    assert info.status == "complete"

    # Same numbers as the local PyTorch run: probabilities, explained labels and tags, every
    # map, every score, every counterfactual (perturbation methods are seeded per part, and a
    # forward pass is a forward pass wherever it runs).
    s, s0 = _sorted(r, "samples", ["sample_index"]), _sorted(ref, "samples", ["sample_index"])
    np.testing.assert_allclose(np.stack(s["probs"]), np.stack(s0["probs"]), atol=1e-5)
    lab, lab0 = _sorted(r, "labels", ["sample_index", "label"]), _sorted(ref, "labels", ["sample_index", "label"])
    pd.testing.assert_frame_equal(lab.drop(columns="prob"), lab0.drop(columns="prob"))
    for e in PERTURBATION:
        for row in lab.itertuples():
            got, want = r.saliency(e, row.part, row.map_offset), ref.saliency(e, row.part, row.map_offset)
            scale = max(float(np.abs(want).max()), 1e-12)
            np.testing.assert_allclose(got / scale, want / scale, atol=1e-4, err_msg=f"{kind} {e}")
    key = ["sample_index", "label", "explainer", "metric"]
    sc, sc0 = _sorted(r, "scores", key), _sorted(ref, "scores", key)
    pd.testing.assert_frame_equal(sc[key], sc0[key])
    np.testing.assert_allclose(sc["score"].to_numpy(float), sc0["score"].to_numpy(float), atol=1e-4, equal_nan=True)
    cf, cf0 = r.table("counterfactuals"), ref.table("counterfactuals")
    assert len(cf) > 0
    pd.testing.assert_frame_equal(cf.drop(columns=[c for c in cf if "prob" in c]),
                                  cf0.drop(columns=[c for c in cf0 if "prob" in c]))

    model = r.manifest["model"]
    if kind.startswith("kserve"):
        assert model["url"].startswith("http://127.0.0.1:") and model["protocol"] == kind[-2:]
        assert info.model == model["url"]  # the runs page names the served model
        if kind == "kserve-v2":  # the V2 metadata endpoint answers: recorded for reproducibility
            assert model["server_model"]["name"] == MODEL
            assert model["server_model"]["inputs"][0]["shape"] == [-1, 3, SIZE, SIZE]


def test_the_kserve_server_listens_on_loopback_only(kserve):
    listening = [c.laddr for c in psutil.Process(kserve.pid).net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and all(a.ip == "127.0.0.1" for a in listening), listening


def test_served_probabilities_come_back_as_the_same_probabilities(kserve):
    x = torch.rand(5, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    want = local_handle().probs(x)
    for protocol in ("v1", "v2"):
        spec = ModelSpec(url=kserve.url(protocol, f"{MODEL}-probs"), outputs="probabilities",
                         **{**DEMO_MODEL, "input_size": (SIZE, SIZE), "mean": tuple(MEAN), "std": tuple(STD)})
        h = load_model(spec, 10)
        np.testing.assert_allclose(h.probs(x).numpy(), want.numpy(), atol=1e-5)


def test_logits_declared_as_probabilities_are_refused_at_load(kserve):
    spec = ModelSpec(url=kserve.url("v2"), outputs="probabilities", **{**DEMO_MODEL, "input_size": (SIZE, SIZE)})
    with pytest.raises(ModelError, match=r"expected probabilities in \[0, 1\].*set model.outputs: logits"):
        load_model(spec, 10)


@pytest.mark.parametrize("binary_data", [False, True])
def test_requests_are_batched_and_equal_local_logits(kserve, binary_data):
    h = RemoteHandle(kserve.url("v2"), activation="sigmoid", input_size=(SIZE, SIZE), num_classes=10,
                     mean=MEAN, std=STD, request_batch=3, binary_data=binary_data)
    x = torch.rand(7, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    out = h.logits(x)
    assert out.shape == (7, 10) and h.requests == 3 and h.passes == 7
    np.testing.assert_allclose(out.numpy(), local_handle().logits(x).numpy(), atol=1e-5)


def test_binary_tensors_go_both_ways(kserve):
    """The V2 binary extension: raw float32 after a JSON header, in the request and the answer."""
    h = RemoteHandle(kserve.url("v2"), activation="sigmoid", input_size=(SIZE, SIZE), num_classes=10, binary_data=True)
    seen = []
    post = h._post
    h._post = lambda body, headers=None: seen.append((len(body), headers, post(body, headers))) or seen[-1][2]
    h.logits(torch.rand(2, 3, SIZE, SIZE))
    (size, headers, r), = seen
    assert headers["Content-Type"] == "application/octet-stream"
    assert size == int(headers["Inference-Header-Content-Length"]) + 2 * 3 * SIZE * SIZE * 4
    assert len(r.content) == int(r.headers["Inference-Header-Content-Length"]) + 2 * 10 * 4


def test_gradient_explainers_are_refused_before_any_work(kserve, demo_data, tmp_path):
    cfg = config_from_dict(run_dict(demo_data, tmp_path / "run", {"url": kserve.url("v2")},
                                    explainers=["occlusion", "gradient"]))
    with pytest.raises(ConfigError, match=r"\['gradient'\] need gradients.*remote \(V2\)"):
        run(cfg, cfg.out, progress=False)
    assert not (tmp_path / "run").exists()


def test_wrong_output_shape_and_unknown_model_are_one_line(kserve):
    with pytest.raises(ModelError) as e:
        load_model(ModelSpec(url=kserve.url("v1"), **{**DEMO_MODEL, "input_size": (SIZE, SIZE)}), 5)
    assert "returned outputs of shape (1, 10) for 1 image(s); expected (1, 5)" in str(e.value)
    with pytest.raises(ModelError) as e:
        load_model(ModelSpec(url=kserve.url("v2", "nope"), **{**DEMO_MODEL, "input_size": (SIZE, SIZE)}), 10)
    assert str(e.value).endswith("answered HTTP 404: Model with name nope does not exist.")
    assert "\n" not in str(e.value)


# --- misbehaving servers: retries, time-outs, malformed answers ------------------------------


@contextmanager
def scripted_server(script: list, target: str | None = None):
    """A loopback HTTP server answering POST number i with ``script[i]`` (the last entry
    repeats): ``"proxy"`` relays the request to ``target`` (the real KServe server),
    ``("sleep", s)`` answers after s seconds (and then appends "answered" to the list), or not
    at all when the test ends first; ``(status, body[, headers])`` answers that.
    Yields (base URL, list of the entries used)."""
    hits: list = []
    closing = threading.Event()

    class Handler(JsonHandler):
        def do_GET(self):  # no V2 metadata here
            self._reply(404, b'{"error": "no metadata"}')

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            step = script[min(len(hits), len(script) - 1)]
            hits.append(step)
            if step == "proxy":
                r = requests.post(target + self.path, data=body, headers={"Content-Type": "application/json"})
                self._reply(r.status_code, r.content)
            elif step[0] == "sleep":
                if not closing.wait(step[1]):
                    hits.append("answered")
                    try:
                        self._reply(200, b"{}")
                    except OSError:  # the client gave up (that is the point of a time-out)
                        pass
            else:
                self._reply(step[0], step[1].encode(), step[2] if len(step) > 2 else None)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}", hits
    finally:
        closing.set()
        srv.shutdown()
        srv.server_close()


def handle(url: str, **kw) -> RemoteHandle:
    return RemoteHandle(url, activation="sigmoid", input_size=(SIZE, SIZE), num_classes=10,
                        mean=MEAN, std=STD, **{"backoff": 0.01, **kw})


X = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
V2_PATH = f"/v2/models/{MODEL}/infer"


def test_5xx_and_429_are_retried_with_backoff_then_answered(kserve):
    want = local_handle().logits(X)
    overloaded = (503, '{"error": "overloaded"}')
    with scripted_server([overloaded, (429, '{"error": "slow down"}', {"Retry-After": "0"}), overloaded, "proxy"],
                         kserve.base) as (base, hits):
        h = handle(base + V2_PATH, retries=3, backoff=0.05)
        got = h.logits(X)
    assert len(hits) == 4 and hits[-1] == "proxy" and h.requests == 4
    assert h.waits == [0.05, 0.1, 0.2]  # exponential backoff: 0.05 · (1, 2, 4) s; Retry-After 0 is no shorter
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)


def test_retries_give_up_with_the_status_and_the_servers_text():
    with scripted_server([(503, '{"error": "model is loading\\nsecond line"}')]) as (base, hits):
        with pytest.raises(ModelError) as e:
            handle(base + V2_PATH, retries=2).logits(X)
    assert len(hits) == 3
    assert str(e.value) == f"model server {base}{V2_PATH} answered HTTP 503 after 3 attempts: model is loading"


def test_4xx_is_not_retried():
    with scripted_server([(400, '{"detail": "input shape mismatch"}'), "proxy"]) as (base, hits):
        with pytest.raises(ModelError, match=r"answered HTTP 400: input shape mismatch$"):
            handle(base + V2_PATH, retries=3).logits(X)
    assert len(hits) == 1


def test_a_slow_server_times_out_in_one_line_without_retrying():
    # The server would answer only after 60 s (or when the test closes it): the client gave up
    # before any answer came, and did not retry.
    with scripted_server([("sleep", 60.0)]) as (base, hits):
        with pytest.raises(ModelError) as e:
            handle(base + V2_PATH, timeout=0.3, retries=3).logits(X)
        assert hits == [("sleep", 60.0)]  # one request, still unanswered when the client gave up
    assert str(e.value) == (f"model server {base}{V2_PATH} did not answer within 0.3 s; "
                            "raise model.timeout or lower model.request_batch")


def test_an_unreachable_server_is_named_in_one_line():
    url = f"http://127.0.0.1:{free_port()}/v1/models/m:predict"
    h = handle(url, retries=2)
    with pytest.raises(ModelError) as e:
        h.logits(X)
    assert h.requests == 3
    assert str(e.value) == (f"model server {url} is unreachable (Connection refused) after 3 attempt(s); "
                            "start it or fix model.url")


@pytest.mark.parametrize("reply, expected", [
    ((200, '{"outputs": []}'), "malformed response: expected {\"outputs\": [{\"shape\": [N, K]"),
    ((200, "<html>ok</html>"), "malformed response"),
    ((200, '{"outputs": [{"name": "y", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]}'),
     "returned outputs of shape (2, 3) for 2 image(s); expected (2, 10)"),
])
def test_malformed_answers_say_what_was_expected(reply, expected):
    with scripted_server([reply]) as (base, _):
        with pytest.raises(ModelError) as e:
            handle(base + V2_PATH).logits(X)
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_cli_reports_an_unreachable_server_as_one_error_line(demo_data, tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}/v2/models/m/infer"
    cfg = run_dict(demo_data, tmp_path / "out", {"url": url, "retries": 0})
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", "--config", str(tmp_path / "run.yaml"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"xai-core: error: model server {url} is unreachable (Connection refused) after 1 attempt(s); start it or fix model.url"]


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize("url, protocol, expected", [
    ("http://h:1/v1/models/m:predict", "auto", "v1"),
    ("https://h/serving/v2/models/m/infer", "auto", "v2"),
    ("http://h:1/v2/models/m/versions/3/infer", "auto", "v2"),
    ("http://h:1/custom/route", "v2", "v2"),
])
def test_protocol_from_the_url_or_explicit(url, protocol, expected):
    assert detect_protocol(url, protocol) == expected


@pytest.mark.parametrize("model, message", [
    ({"url": "http://h:1/predict"}, "cannot tell the protocol from the path"),
    ({"url": "h:1/v1/models/m:predict"}, "expected http://host:port/v1/models/NAME:predict"),
    ({"url": "http://h:1/v1/models/m:predict", "protocol": "grpc"}, "model.protocol is 'grpc'"),
    ({"url": "http://h:1/v1/models/m:predict", "outputs": "scores"}, "model.outputs is 'scores'"),
    ({"url": "http://h:1/v1/models/m:predict", "request_batch": 0}, "request_batch 0"),
    ({"url": "http://h:1/v1/models/m:predict", "timeout": "30s"}, "model.timeout is '30s'; expected a number"),
    ({"url": "http://h:1/v1/models/m:predict", "timeout": 0}, "expected timeout > 0 s"),
    ({"url": "http://h:1/v1/models/m:predict", "factory": "a:b"}, "exactly one of `factory`"),
    ({"url": "http://h:1/v1/models/m:predict", "weights": "w.pt"}, "model.weights is set, but a served model"),
    ({"url": "http://h:1/v1/models/m:predict", "factory_kwargs": {"a": 1}}, "model.factory_kwargs is set"),
    ({"url": "http://h:1/v1/models/m:predict", "binary_data": True}, "extension of the V2 protocol"),
])
def test_bad_served_model_configs_are_refused(model, message, demo_data, tmp_path):
    with pytest.raises(ConfigError, match=None) as e:
        config_from_dict(run_dict(demo_data, tmp_path, model))
    assert message in str(e.value)


def test_json_array_is_float32_exact():
    a = np.random.default_rng(0).random((2, 3, 4, 5), dtype=np.float32) * np.float32(1e-3)
    assert np.array_equal(np.asarray(json.loads(json_array(a)), dtype=np.float32), a)
