"""Cost of a served model: ms per image through real model servers on 127.0.0.1 against the same
demo CNN run locally in PyTorch, per server and transport: KServe (V1 JSON, V2 JSON, V2 binary
tensors), MLServer 1.7 (V2 JSON; it has no binary tensor extension) and a Seldon Core
microservice (Seldon protocol, JSON ndarray).

The servers are the test suite's (``tests/models/*_server.py``, each in its own venv: ``make
.venv-kserve/.installed .venv-mlserver/.installed .venv-seldon/.installed``), serving the demo
CNN traced to TorchScript, one intra-op thread like the client. Every figure is best-of-``BENCH_REMOTE_REPEATS`` over ``BENCH_REMOTE_IMAGES``
images, the local baseline re-timed in the same process just before each row.

Run: ``python bench/remote.py``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import ROOT, env_int, figure, header

sys.path.insert(0, str(ROOT / "tests" / "models"))
from served import kserve_server, mlserver_server, seldon_server, trace_demo_cnn  # noqa: E402


def best_ms_per_image(fn, x: torch.Tensor, repeats: int) -> float:
    fn(x[:2])  # warm-up: connections, allocator
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - t0)
    return best / x.shape[0] * 1000


def main() -> None:
    from xai_core.demo import MEAN, STD
    from xai_core.models.loading import ModelSpec, load_model

    torch.set_num_threads(1)
    header("served models (KServe, MLServer, Seldon on loopback) vs local PyTorch", "python bench/remote.py")
    n, repeats = env_int("BENCH_REMOTE_IMAGES", 64), env_int("BENCH_REMOTE_REPEATS", 5)
    x = torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    common = {"activation": "sigmoid", "input_size": (64, 64), "mean": tuple(MEAN), "std": tuple(STD)}
    local = load_model(ModelSpec(factory="xai_core.demo.model:load_demo_model", **common), 10)

    def local_ms() -> float:
        return best_ms_per_image(lambda b: local.predict(b, batch_size=32), x, repeats)

    def row(label: str, url: str, **spec) -> None:
        h = load_model(ModelSpec(url=url, **spec, **common), 10)
        base = local_ms()  # re-timed next to each row: the ratio holds on a shared machine
        ms = best_ms_per_image(lambda b: h.predict(b, batch_size=64), x, repeats)
        used = " [binary refused: JSON used]" if h.transport and not h.transport["binary_data"] else ""
        figure(label, ms, f"ms/image ({ms / base:.1f}x local, {1000 / ms:.0f} images/s){used}")

    with tempfile.TemporaryDirectory() as tmp:
        model = trace_demo_cnn(Path(tmp) / "democnn.pt")
        figure("local PyTorch, batch 32", local_ms(), "ms/image")
        with kserve_server(model, Path(tmp) / "kserve.log") as served:
            for protocol, binary, batch in (("v1", False, 32), ("v2", False, 32), ("v2", True, 8),
                                            ("v2", True, 32), ("v2", True, 64)):
                row(f"KServe {protocol.upper()} {'binary' if binary else 'JSON'}, request_batch {batch}",
                    served.url(protocol), request_batch=batch, binary_data=binary)
        with mlserver_server(model, Path(tmp) / "mlserver.log") as served:
            row("MLServer V2 JSON, request_batch 32", served.url("v2"), request_batch=32)
            row("MLServer V2 binary_data: true, request_batch 32", served.url("v2"), request_batch=32,
                binary_data=True)
        with seldon_server(model, Path(tmp) / "seldon.log") as served:
            row("Seldon JSON ndarray, request_batch 32", served.url("seldon"), request_batch=32)


if __name__ == "__main__":
    main()
