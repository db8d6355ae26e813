"""Single-process throughput of the default demo configuration: images/s, model passes, pass
efficiency, bytes on disk per saliency map.

Pass efficiency compares the run's wall time with the time its model passes alone would take
at the best batch size, both measured in this process:

* a *pass* is one image through the network (``ClassifierHandle.passes``); a forward hook on
  the network splits them into forward-only passes and *gradient* passes (output requiring
  grad: a backward to the input follows);
* per-image times are measured at batch sizes 1…256, best of 3, before and after the run
  (their mean is used: the machine is shared, its load drifts): ``t_fwd`` without autograd at
  the best batch size, ``t_grad`` forward + backward to the input at that batch size;
* efficiency (forward-priced) = passes × t_fwd / wall, the issue's definition; it prices a
  gradient pass like a forward pass, so it understates the work done;
* efficiency (grad-weighted) = (forward passes × t_fwd + gradient passes × t_grad) / wall,
  the figure the goal (≥ 0.8) applies to.

Run: ``python bench/runner.py`` (``BENCH_IMAGES=N`` for more images; default 8).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import demo_config, dir_bytes, env_int, figure, header, machine, manifest, time_per_image

BATCHES = (1, 8, 16, 32, 64, 128, 256)


def per_pass_times(module) -> tuple[int, float, float]:
    """(best batch size, t_fwd, t_grad), seconds per image."""
    fwd = {b: time_per_image(module, b, grad=False) for b in BATCHES}
    best = min(fwd, key=fwd.get)
    return best, fwd[best], time_per_image(module, best, grad=True)


def count_passes():
    """Patch RunContext.build so that every context counts forward and gradient passes."""
    from xai_core.engine import RunContext

    counts = {"forward": 0, "grad": 0}
    build = RunContext.build.__func__

    def hook(_module, inputs, output):
        counts["grad" if output.requires_grad else "forward"] += int(inputs[0].shape[0])

    def counted_build(cls, config):
        ctx = build(cls, config)
        ctx.model.module.register_forward_hook(hook)
        return ctx

    RunContext.build = classmethod(counted_build)
    return counts


def saliency_bytes(run_dir: Path, explainer: str) -> int:
    return sum(dir_bytes(p / "saliency" / explainer) for p in (run_dir / "arrays").glob("part-*.zarr"))


def main() -> None:
    from xai_core.config import config_from_dict
    from xai_core.models.loading import load_model
    from xai_core.runner import run
    from xai_core.summary.reader import RunReader

    n = env_int("BENCH_IMAGES", 8)
    header(f"runner: default demo configuration, {n} images, one process", "python bench/runner.py")
    tmp = Path(tempfile.mkdtemp(prefix="xai-bench-runner-"))
    try:
        cfg = config_from_dict(demo_config(tmp / "run", limit=n))
        module = load_model(cfg.model, num_classes=10).module
        best, fwd0, grad0 = per_pass_times(module)
        counts = count_passes()
        t0 = time.perf_counter()
        run(cfg, cfg.out, progress=False)
        wall = time.perf_counter() - t0
        _, fwd1, grad1 = per_pass_times(module)
        t_fwd, t_grad = (fwd0 + fwd1) / 2, (grad0 + grad1) / 2

        m = manifest(cfg.out)
        passes = m["timing"]["model_passes"]
        hooked = counts["forward"] + counts["grad"]
        figure("images/s", n / wall, "img/s", "")
        figure("wall time", wall, "s (model load, dataset, computation, writing)")
        figure("model passes", passes, f"images through the network ({passes / n:.0f} per image; "
               f"hook saw {counts['forward']} forward + {counts['grad']} gradient)")
        figure("best batch size", best)
        figure("per-pass time, forward", t_fwd * 1e3, f"ms/img (before {fwd0 * 1e3:.2f}, after {fwd1 * 1e3:.2f})")
        figure("per-pass time, forward+backward", t_grad * 1e3, f"ms/img (before {grad0 * 1e3:.2f}, after {grad1 * 1e3:.2f})")
        figure("pass efficiency, forward-priced", passes * t_fwd / wall, "(passes × t_fwd / wall)")
        figure("pass efficiency, grad-weighted",
               (counts["forward"] * t_fwd + counts["grad"] * t_grad) / wall, "(hook's passes, priced by kind)", "≥ 0.8")
        print("   seconds per explainer: " + ", ".join(f"{k} {v:.1f}" for k, v in m["timing"]["explain_s"].items()))
        print("   seconds per metric:    " + ", ".join(f"{k} {v:.1f}" for k, v in m["timing"]["metric_s"].items()))
        print("   seconds per analysis:  " + ", ".join(f"{k} {v:.1f}" for k, v in m["timing"].get("analysis_s", {}).items()))

        reader = RunReader(cfg.out)
        n_maps = len(reader.labels())
        h, w = cfg.model.input_size
        for e in reader.explainers:
            b = saliency_bytes(Path(cfg.out), e["name"])
            figure(f"bytes on disk per saliency map, {e['name']}", round(b / max(n_maps, 1)),
                   f"B ({h}×{w} float32 raw = {h * w * 4} B)")
        total_maps = sum(saliency_bytes(Path(cfg.out), e["name"]) for e in reader.explainers)
        figure("bytes on disk per saliency map, all explainers", round(total_maps / max(n_maps * len(reader.explainers), 1)), "B")
        figure("bytes on disk per image (whole run)", round(dir_bytes(Path(cfg.out)) / n), "B")
        print(f"   after: {machine()}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(__doc__)
    main()
