"""Latency of the explanation service (``xai-core explainer``) for one 224 × 224 image with
occlusion (window 56, stride 28: 49 windows + 1 pass per label, top-1 label), against a loopback
predictor, and its overhead over the same explainer called in process.

Predictor: the test suite's KServe ModelServer (``tests/models/kserve_server.py``, its own venv)
serving the demo CNN traced to TorchScript (fully convolutional: it takes 224 × 224) with one
intra-op thread; the client side (this process, and the service's) keeps torch's default. Rows, each the median and best of ``BENCH_SERVICE_REPEATS``
requests after a warm-up:

* in process, local PyTorch — ``xai_core.append.LiveExplainer`` on the module itself;
* in process, through the predictor — the same explainer on the predictor's URL (what the
  service computes, without its HTTP front);
* the service, ``POST :explain`` with the image as uint8 nested lists (and as base64 PNG);
* the service with ``--log-run`` (every request also committed as a part of a run);
* the service's own work per request, timed in this process without the predictor: parsing the
  request (JSON, the image as uint8 lists or base64 PNG) and writing the answer (one 224 × 224
  map as float32-exact JSON) — the part of the overhead the machine's load does not blur.

The service's overhead = its latency − the in-process latency through the same predictor,
measured as the median of back-to-back pairs (in process, then the service), so that the load of a
shared machine, which moves both, cancels in each pair.

Run: ``python bench/service.py``.
"""

from __future__ import annotations

import base64
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
from _common import ROOT, env_int, figure, header

sys.path.insert(0, str(ROOT / "tests" / "models"))
sys.path.insert(0, str(ROOT / "tests" / "service"))
from served import MODEL, free_port, kserve_server, trace_demo_cnn  # noqa: E402
from service_helpers import running_service  # noqa: E402

SIZE, WINDOW, STRIDE = 224, 56, 28


def timed(fn, repeats: int) -> tuple[float, float]:
    """(median, best) seconds of ``fn()`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main() -> None:
    from PIL import Image
    from skimage import data

    from xai_core.append import LiveExplainer
    from xai_core.config import config_from_dict
    from xai_core.data.memory import Item
    from xai_core.demo import MEAN, STD
    from xai_core.demo.model import load_demo_model

    # torch's default threads here, as in the service's own process (the predictor keeps one)
    header("explanation service: one 224×224 image, occlusion 56/28", "python bench/service.py")
    repeats = env_int("BENCH_SERVICE_REPEATS", 7)
    image = np.asarray(Image.fromarray(data.astronaut()).resize((SIZE, SIZE), Image.BILINEAR))
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    lists = json.dumps({"instances": [image.tolist()]})
    b64 = json.dumps({"instances": [{"b64": base64.b64encode(buf.getvalue()).decode()}]})
    occlusion = {"type": "occlusion", "params": {"window": WINDOW, "stride": STRIDE}}

    def config(model: dict) -> dict:
        return {"model": {**model, "activation": "sigmoid", "input_size": [SIZE, SIZE], "mean": list(MEAN),
                          "std": list(STD), "fast_forward": "off"},
                "dataset": {"kind": "memory", "classes": [str(i) for i in range(10)]},
                "explainers": [occlusion], "metrics": [], "labels": {"top_k": 1}}

    def in_process(ex) -> float:
        return timed(lambda: ex.explain([Item(image)], targets=lambda p: [[int(np.argmax(p[0]))]]), repeats)

    from xai_core.service.protocol import Limits, dumps, parse_json, parse_request

    def parse(body):
        return parse_request(parse_json(body.encode()), explainers=["occlusion"], classes=[str(i) for i in range(10)],
                             limits=Limits(), param_checker=lambda *a: None)

    for name, body in (("uint8 lists", lists), ("b64 PNG", b64)):
        med, best = timed(lambda body=body: parse(body), repeats)
        figure(f"service work: parse a request, {name} ({len(body) / 1e6:.1f} MB)", med * 1000,
               f"ms median (best {best * 1000:.1f} ms)")
    answer = {"explanations": [{"predictions": np.zeros(10, np.float32),
                                "labels": [{"label": 0, "maps": {"occlusion": np.random.rand(SIZE, SIZE).astype(np.float32)}}]}]}
    med, best = timed(lambda: dumps(answer), repeats)
    figure(f"service work: write the answer ({len(dumps(answer)) / 1e6:.1f} MB)", med * 1000,
           f"ms median (best {best * 1000:.1f} ms)")

    local = LiveExplainer(config_from_dict(config({"module": "DemoCNN"})), network=load_demo_model())
    med, best = in_process(local)
    figure("in process, local PyTorch", med * 1000, f"ms median (best {best * 1000:.0f} ms)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        net = trace_demo_cnn(tmp / "democnn.pt")
        with kserve_server(net, tmp / "kserve.log") as predictor:
            for protocol in ("v1", "v2"):
                remote = LiveExplainer(config_from_dict(config({"url": predictor.url(protocol), "request_batch": 64})))
                base_med, base_best = in_process(remote)
                figure(f"in process, predictor KServe {protocol.upper()} JSON", base_med * 1000,
                       f"ms median (best {base_best * 1000:.0f} ms)")
                for log in (False, True):
                    args = ["explainer", "--model-name", MODEL, "--predictor-host", predictor.base.removeprefix("http://"),
                            "--protocol", protocol, "--num-classes", "10", "--activation", "sigmoid",
                            "--input-size", str(SIZE), "--mean", ",".join(map(str, MEAN)),
                            "--std", ",".join(map(str, STD)), "--explainers", "occlusion",
                            "--set", f"occlusion.window={WINDOW}", "--set", f"occlusion.stride={STRIDE}",
                            "--port", str(free_port())] + (["--log-run", str(tmp / f"log-{protocol}")] if log else [])
                    with running_service(args, tmp / f"service-{protocol}-{log}.log") as (url, _):
                        endpoint = f"{url}/v1/models/{MODEL}:explain"
                        for name, body in (("uint8 lists", lists), ("b64 PNG", b64)):
                            if log and name == "b64 PNG":
                                continue

                            def post(body=body):
                                r = requests.post(endpoint, data=body, timeout=300,
                                                  headers={"Content-Type": "application/json"})
                                assert r.status_code == 200, r.text[:300]

                            post()  # warm-up: the service's engine and its predictor connection
                            pairs = []
                            for _ in range(repeats):
                                t0 = time.perf_counter()
                                remote.explain([Item(image)], targets=lambda p: [[int(np.argmax(p[0]))]])
                                t1 = time.perf_counter()
                                post()
                                pairs.append((t1 - t0, time.perf_counter() - t1))
                            inp = statistics.median(a for a, _ in pairs)
                            svc = statistics.median(b for _, b in pairs)
                            over = statistics.median(b - a for a, b in pairs)
                            ratio = statistics.median(b / a for a, b in pairs)
                            figure(f"service, predictor {protocol.upper()}, {name}{', --log-run' if log else ''}",
                                   svc * 1000, f"ms median (in process next to it {inp * 1000:.0f} ms); overhead "
                                               f"{over * 1000:+.0f} ms per request, {ratio:.2f}x (median of pairs)")


if __name__ == "__main__":
    main()
