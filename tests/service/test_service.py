"""The explanation service against a real KServe ModelServer (the predictor) on 127.0.0.1: its
``:explain`` maps equal ``xai_core.explain`` on the same image, ``:predict`` is forwarded, bad
requests get 400/413/404 with one line and the service keeps serving, a predictor that is down or
slow gets 502/504, and ``--log-run`` is a run the dashboard opens."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import requests
from PIL import Image

import xai_core
from service_helpers import LIGHT, SIZE, running_service, service_args
from served import MODEL, free_port
from xai_core.demo import MEAN, STD
from xai_core.demo.model import load_demo_model


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from xai_core.demo.dataset import generate_demo_dataset

    manifest = generate_demo_dataset(tmp_path_factory.mktemp("demo2"), n_train=0, n_test=2, seed=0)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    return [np.asarray(Image.open(manifest.parent / r["image"]).convert("RGB")) for r in rows]


def post(base, body, path=f"/v1/models/{MODEL}:explain", **kw):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(base + path, data=data, headers={"Content-Type": "application/json"}, timeout=120, **kw)


def params_of(entries: list[str]) -> dict:
    out: dict = {}
    for s in entries:
        key, value = s.split("=")
        name, p = key.split(".")
        out.setdefault(name, {})[p] = int(value)
    return out


def test_explain_equals_xai_core_explain(service, kserve, photos, tmp_path):
    base, _ = service
    r = post(base, {"instances": [photos[0].tolist()], "parameters": {"top_k": 2}, "id": "first"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["model_name"] == MODEL and got["id"] == "first" and len(got["explanations"]) == 1
    exp = got["explanations"][0]
    assert len(exp["predictions"]) == 10 and len(exp["labels"]) == 2
    p = np.asarray(exp["predictions"])
    assert [lab["label"] for lab in exp["labels"]] == list(np.argsort(-p)[:2])
    explainers = [{"type": n, "params": v} for n, v in params_of(LIGHT).items()]
    kw = dict(classes=[str(i) for i in range(10)], activation="sigmoid", mean=MEAN, std=STD, top_k=2,
              explainers=explainers, metrics=["deletion_auc"], progress=False, fast_forward="off")
    local = xai_core.explain(load_demo_model(), [photos[0]], out=tmp_path / "local", **kw)
    served = xai_core.explain(kserve.url("v1"), [photos[0]], out=tmp_path / "url", **kw)
    for lab in exp["labels"]:
        assert lab["class"] == str(lab["label"]) and 0 <= lab["probability"] <= 1
        occ = np.asarray(lab["maps"]["occlusion"], dtype=np.float32)
        assert occ.shape == (SIZE, SIZE)
        np.testing.assert_allclose(occ, local.map("0", lab["label"], "occlusion"), atol=1e-5)
        np.testing.assert_array_equal(occ, served.map("0", lab["label"], "occlusion"))
        np.testing.assert_array_equal(np.asarray(lab["maps"]["anchors"], np.float32),
                                      served.map("0", lab["label"], "anchors"))
        anchor = lab["anchor"]["anchors"]  # alibi AnchorImages' answer: segments, anchor, precision, coverage
        seg = np.asarray(anchor["segments"])
        assert seg.shape == (SIZE, SIZE) and set(anchor["anchor"]) <= set(np.unique(seg).tolist())
        mask = np.isin(seg, anchor["anchor"]).astype(np.float32)
        np.testing.assert_array_equal(mask, np.asarray(lab["maps"]["anchors"], np.float32))
        d = served.details[(served.details.label == lab["label"]) & (served.details.explainer == "anchors")]
        assert anchor["precision"] == pytest.approx(float(d[d.key == "precision"].value.iloc[0]))
        assert anchor["coverage"] == pytest.approx(float(d[d.key == "coverage"].value.iloc[0]))
        s = served.scores
        want = s[(s.label == lab["label"]) & (s.explainer == "occlusion")].score.iloc[0]
        assert lab["scores"]["occlusion"]["deletion_auc"] == pytest.approx(want, abs=1e-9)
    assert got["meta"]["log"]["run"].endswith(MODEL)


def test_b64_images_and_explicit_labels(service, photos):
    base, _ = service
    buf = io.BytesIO()
    Image.fromarray(photos[1]).save(buf, format="PNG")
    b64 = {"b64": base64.b64encode(buf.getvalue()).decode()}
    a = post(base, {"instances": [b64], "parameters": {"labels": [3, "7"], "explainers": ["occlusion"]}})
    b = post(base, {"instances": [photos[1].tolist()], "parameters": {"labels": [7, 3], "explainers": ["occlusion"]}})
    assert a.status_code == b.status_code == 200, a.text
    la, lb = a.json()["explanations"][0]["labels"], b.json()["explanations"][0]["labels"]
    assert sorted(x["label"] for x in la) == [3, 7] and set(la[0]["maps"]) == {"occlusion"}
    assert [x["maps"] for x in la] == [x["maps"] for x in lb]
    # other parameters than the service's: answered, and logged to a run of their own configuration
    c = post(base, {"instances": [b64], "parameters": {"explainers": ["occlusion"], "occlusion": {"window": 32,
                                                                                                  "stride": 32}}})
    assert c.status_code == 200, c.text
    assert c.json()["meta"]["explainers"][0]["params"]["window"] == 32
    assert c.json()["meta"]["log"]["run"] != a.json()["meta"]["log"]["run"]


def test_readiness_and_predict_forwarding(service, kserve, photos):
    base, _ = service
    assert requests.get(f"{base}/v1/models/{MODEL}", timeout=30).json() == {"name": MODEL, "ready": True}
    assert requests.get(f"{base}/v2/health/ready", timeout=30).json() == {"ready": True}
    assert requests.get(f"{base}/v2/health/live", timeout=30).ok
    assert requests.get(f"{base}/v1/models/other", timeout=30).status_code == 404
    x = (photos[0].astype(np.float32) / 255 - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    body = {"instances": [x.transpose(2, 0, 1).tolist()]}
    via = post(base, body, path=f"/v1/models/{MODEL}:predict")
    direct = post(kserve.base, body, path=f"/v1/models/{MODEL}:predict")
    assert via.status_code == 200 and via.json() == direct.json()
    v2 = {"inputs": [{"name": "pixels", "shape": [1, 3, SIZE, SIZE], "datatype": "FP32",
                      "data": x.transpose(2, 0, 1).ravel().tolist()}]}
    via2 = post(base, v2, path=f"/v2/models/{MODEL}/infer")
    assert via2.status_code == 200 and via2.json()["outputs"] == post(kserve.base, v2,
                                                                      path=f"/v2/models/{MODEL}/infer").json()["outputs"]


BAD = [
    (b"{not json", 400, "not JSON"),
    (b"[1, 2]", 400, "expected an object"),
    ({"instances": []}, 400, "missing or empty"),
    ({"instances": [[[1, 2], [3]]]}, 400, "ragged"),
    ({"instances": [[[[0, 0, 0, 0, 0]]]]}, 400, "has shape"),
    ({"instances": [[[[300, 0, 0]]]]}, 400, "integers 0–255"),
    ({"instances": [[[[0.5, 0, 0]]]]}, 400, "integers 0–255"),
    ({"instances": [np.zeros((129, 129, 3), np.uint8).tolist()]}, 400, "the cap is 16,384"),
    ({"instances": [np.zeros((2, 2, 3), np.uint8).tolist()] * 5}, 400, "the cap is 4 per request"),
    ({"instances": [{"b64": "@@@"}]}, 400, "not valid base64"),
    ({"instances": [{"b64": base64.b64encode(b"GIF89a").decode()}]}, 400, "not a readable PNG or JPEG"),
    ({"instances": [[[[0, 0, 0]]]], "parameters": {"explainers": ["lime"]}}, 400, "unknown explainer 'lime'"),
    ({"instances": [[[[0, 0, 0]]]], "parameters": {"explainers": ["gradient"]}}, 400, "unknown explainer"),
    ({"instances": [[[[0, 0, 0]]]], "parameters": {"top_k": 11}}, 400, "expected an integer 1–10"),
    ({"instances": [[[[0, 0, 0]]]], "parameters": {"labels": [10]}}, 400, "not a class"),
    ({"instances": [[[[0, 0, 0]]]], "parameters": {"occlusion": {"stride": 1, "window": 2}}}, 400,
     "model passes per image and label; the cap is 2,000"),
    ({"instances": [[[[0, 0, 0]]]], "parameters": {"occlusion": {"stride": "x"}}}, 400, "parameter 'stride'"),
    ({"instances": [[[[0, 0, 0]]]], "parameters": {"occlusion": {"nope": 1}}}, 400, "unknown parameter 'nope'"),
    ({"instances": [[[[0, 0, 0]]]], "parameters": {"bogus": 1}}, 400, "unknown parameter 'bogus'"),
    ({"instances": [[[[0, 0, 0]]]], "extra": 1}, 400, "unknown key 'extra'"),
    (b" " * (1 << 20) + b"{}", 413, "the cap is 1,048,576"),
]


@pytest.mark.parametrize("body,status,text", BAD, ids=[t for _, _, t in BAD])
def test_bad_requests_get_4xx_and_one_line(service, body, status, text):
    base, proc = service
    r = post(base, body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert text in err and "\n" not in err
    assert proc.poll() is None


def test_the_service_keeps_serving_and_the_log_opens_in_the_dashboard(service, service_logdir, photos, monkeypatch):
    base, proc = service
    ok = post(base, {"instances": [photos[1].tolist(), photos[0].tolist()]})
    assert ok.status_code == 200 and len(ok.json()["explanations"]) == 2 and proc.poll() is None
    from xai_core.dashboard import list_runs

    runs = {r.name: r for r in list_runs(service_logdir)}
    assert runs[MODEL].status == "running" and runs[MODEL].done_samples >= 3  # live, growing
    log = xai_core.open_run(service_logdir / MODEL)
    assert log.manifest["open_ended"] and log.samples["sample_id"].is_unique
    assert ok.json()["sample_ids"] == log.samples["sample_id"].tolist()[-2:]
    # what was answered is what was logged
    ans = ok.json()["explanations"][1]["labels"][0]
    np.testing.assert_array_equal(np.asarray(ans["maps"]["occlusion"], np.float32),
                                  log.map(ok.json()["sample_ids"][1], ans["label"], "occlusion"))
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("XAI_LOGDIR", str(service_logdir))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app.py"), default_timeout=90)
    at.query_params["run"] = MODEL
    at.run()
    at.switch_page("pages/saliency.py").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [c for img in at.image for c in img.captions if c and "·" not in c]
    assert set(ok.json()["sample_ids"]) <= set(shown)


class Predictor(BaseHTTPRequestHandler):
    """A predictor that answers slowly (``delay`` s) with one logit per class."""

    delay = 0.0

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.delay)
        body = json.dumps({"predictions": [[0.0] * 10]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_predictor_down_or_slow_gets_502_or_504(tmp_path, photos):
    dead = free_port()  # nothing listens there
    slow = ThreadingHTTPServer(("127.0.0.1", 0), type("Slow", (Predictor,), {"delay": 3.0}))
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    try:
        for host, status, text in ((f"127.0.0.1:{dead}", 502, "unreachable"),
                                   (f"127.0.0.1:{slow.server_address[1]}", 504, "did not answer within 1 s")):
            args = service_args(host, free_port(), "--timeout", "1")
            with running_service(args, tmp_path / f"{status}.log") as (base, proc):
                r = requests.get(f"{base}/v2/health/ready", timeout=30)
                assert r.status_code == 503 and text in r.json()["error"]
                r = post(base, {"instances": [photos[0].tolist()]})
                assert r.status_code == status and f"127.0.0.1:" in r.json()["error"] and text in r.json()["error"]
                f = post(base, {"instances": [[0.0]]}, path=f"/v1/models/{MODEL}:predict")
                assert f.status_code == status
                assert proc.poll() is None
    finally:
        slow.shutdown()
