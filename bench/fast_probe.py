"""Cost of the fast-forward decision (issue 15 item 7): the export and probe of
``model.fast_forward: auto`` on the demo CNN at the run's largest batch (64), with today's probe
(16 distinct images, the batch of 64 checked on them repeated, speed timed on the 16) against the
probe before it (64 images, speed timed on all 64), alternated in one process; and the estimate
that makes ``auto`` skip the probe for a light run.

Run: ``python bench/fast_probe.py`` (``BENCH_PROBE_REPEATS``: rounds, default 3).
"""

from __future__ import annotations

import time

import torch
from _common import DEMO_DATA, env_int, figure, header


def main() -> None:
    from xai_core.demo import MEAN, STD
    from xai_core.models import fast
    from xai_core.models.loading import ModelSpec, load_model

    torch.set_num_threads(1)
    header("fast-forward decision: export + probe", "python bench/fast_probe.py")
    handle = load_model(ModelSpec(factory="xai_core.demo.model:load_demo_model", input_size=64, mean=MEAN, std=STD), 10)
    from xai_core.data import open_dataset, prepare_batch
    from xai_core.data.spec import DatasetSpec
    from xai_core.demo.dataset import ensure_demo_dataset

    ensure_demo_dataset(DEMO_DATA)  # the run's own images, as the runner probes on them
    ds = open_dataset(DatasetSpec(kind="manifest", path=str(DEMO_DATA / "manifest.jsonl"), split="test"))
    images = prepare_batch(ds, list(range(8)), (64, 64)).pixels
    calls = []
    hook = handle.module.register_forward_pre_hook(lambda m, a: calls.append(int(a[0].shape[0])))
    best = {}
    for _ in range(env_int("BENCH_PROBE_REPEATS", 3)):
        for name, probe in (("before (64 probe images)", 64), ("now (16 probe images)", fast.PROBE_IMAGES)):
            saved, fast.PROBE_IMAGES = fast.PROBE_IMAGES, probe
            calls.clear()
            t0 = time.perf_counter()
            try:
                _, info = fast.enable_fast_forward(handle, images, batch_size=64, require_speedup=False)
                assert info["backend"] == "onnxruntime", info  # exact: the whole probe ran, timing included
            finally:
                fast.PROBE_IMAGES = saved
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
            best[f"{name} torch passes"] = sum(calls)
    hook.remove()
    for name in ("before (64 probe images)", "now (16 probe images)"):
        figure(f"{name}: seconds (best)", best[name], "s")
        figure(f"{name}: torch passes", best[f"{name} torch passes"])
    figure("ratio now / before", best["now (16 probe images)"] / best["before (64 probe images)"])
    figure("auto skips the probe below", fast.MIN_PASSES, "estimated gradient-free passes")


if __name__ == "__main__":
    main()
