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

The same configuration then runs again with the fast forward path (``model.fast_forward:
auto``: gradient-free passes through an exact ONNX Runtime export, ``xai_core/models/fast.py``)
in the same process, after one untimed warm-up run of one image that pays the one-off costs
(imports, first calls) for both: images/s both ways, their ratio (goal ≥ 2) and the largest
difference between the two runs' scores (goal ≤ 1e-5). The time spent inside the handle's
forward calls (``logits``: ONNX Runtime or torch) is measured in both runs, to show where the
rest of the time goes.

Last, the pipelined runner (a reader thread decodes the next part and a writer thread commits
the last one while the model works: ``xai_core/pipeline.py``) against the sequential one
(``pipelined=False``, ``--no-pipeline``: each part read, computed and written in turn, as before
the pipeline), same process, same configuration, alternating which goes first, for
``BENCH_PIPELINE_REPEATS`` rounds (default 3): images/s of each, their ratio per round (goal
≥ 1: the pipeline must not cost speed on the CPU), the median and the spread, and where the time
went (the manifest's ``phases_s``: the model's waits on the disk; ``background_s``). Two
configurations: the default demo one on ``BENCH_PIPELINE_IMAGES`` images (default 8, in parts of
``BENCH_PIPELINE_BATCH`` = 4 so that there are parts to overlap: the model's work dominates) and
a light one (Gradient, Grad-CAM, random; map-only metrics; no analyses) on
``BENCH_PIPELINE_LIGHT_IMAGES`` (default 256), where reading and writing are a large share.

Run: ``python bench/runner.py`` (``BENCH_IMAGES=N`` for more images; default 8);
``python bench/runner.py pipeline`` for the pipeline comparison alone.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import demo_config, dir_bytes, env_int, figure, header, load_line, machine, manifest, time_per_image

BATCHES = (1, 8, 16, 32, 64, 128, 256)


def per_pass_times(module) -> tuple[int, float, float]:
    """(best batch size, t_fwd, t_grad), seconds per image."""
    fwd = {b: time_per_image(module, b, grad=False) for b in BATCHES}
    best = min(fwd, key=fwd.get)
    return best, fwd[best], time_per_image(module, best, grad=True)


def count_passes():
    """Patch RunContext.build so that every context counts forward and gradient passes through
    torch (a hook on the pixel-space wrapper, which the fast path ignores: passes it serves
    are in the manifest's ``fast_forward_passes``) and times the handle's forward calls."""
    from xai_core.engine import RunContext

    counts = {"forward": 0, "grad": 0, "logits_s": 0.0}
    build = RunContext.build.__func__

    def hook(_module, inputs, output):
        counts["grad" if output.requires_grad else "forward"] += int(inputs[0].shape[0])

    def counted_build(cls, config):
        ctx = build(cls, config)
        ctx.model.module.register_forward_hook(hook)
        logits = ctx.model.logits

        def timed(x):
            t0 = time.perf_counter()
            try:
                return logits(x)
            finally:
                counts["logits_s"] += time.perf_counter() - t0

        ctx.model.logits = timed
        return ctx

    RunContext.build = classmethod(counted_build)
    return counts


def with_fast_forward(raw: dict, mode: str):
    from xai_core.config import config_from_dict

    raw["model"]["fast_forward"] = mode
    return config_from_dict(raw)


def fast_report(cfg, fast_cfg, n: int, wall: float, fast_wall: float, counts: dict, fast_counts: dict) -> None:
    """The fast forward path against the torch-only run above: speed, agreement, where time goes."""
    import numpy as np
    from xai_core.summary.reader import RunReader

    m, fm = manifest(cfg.out), manifest(fast_cfg.out)
    ff, ft = fm["model"]["fast_forward"], fm["timing"]
    print("   -- fast forward path (model.fast_forward: on; auto also asks it to be faster on its probe), same configuration, same process", flush=True)
    print(f"   decision: {ff}", flush=True)
    figure("images/s, fast path", n / fast_wall, f"img/s (torch only: {n / wall:.3f})")
    figure("speed-up of the fast path", wall / fast_wall, "× (images/s, fast path / torch only)", "≥ 2")
    key = ["sample_index", "label", "explainer", "metric"]
    a, b = (RunReader(d).scores().sort_values(key).reset_index(drop=True) for d in (fast_cfg.out, cfg.out))
    same_rows = a[key].equals(b[key])
    diff = float(np.nanmax(np.abs(a["raw"].to_numpy() - b["raw"].to_numpy()))) if same_rows and len(a) else float("nan")
    figure("max |score difference|, fast path vs torch only", diff,
           f"(raw metric values, {len(a)} scores{'' if same_rows else '; ROWS DIFFER'})", "≤ 1e-5")
    pa, pb = (np.stack(RunReader(d).samples()["probs"]) for d in (fast_cfg.out, cfg.out))
    figure("max |probability difference|", float(np.abs(pa - pb).max()))
    figure("passes through ONNX Runtime", ft["fast_forward_passes"],
           f"of {ft['model_passes']} ({ft['fast_forward_passes'] / max(ft['model_passes'], 1):.0%}); "
           f"torch: {fast_counts['forward']} forward + {fast_counts['grad']} gradient")
    figure("time in forward calls (handle.logits)", fast_counts["logits_s"],
           f"s of {fast_wall:.1f} s with the fast path; {counts['logits_s']:.1f} s of {wall:.1f} s torch only")
    print("   seconds per explainer, torch only → fast path: " + ", ".join(
        f"{k} {v:.1f} → {ft['explain_s'].get(k, 0):.1f}" for k, v in m["timing"]["explain_s"].items()), flush=True)
    print("   seconds per metric, torch only → fast path:    " + ", ".join(
        f"{k} {v:.1f} → {ft['metric_s'].get(k, 0):.1f}" for k, v in m["timing"]["metric_s"].items() if v >= 0.05), flush=True)
    print("   seconds per analysis, torch only → fast path:  " + ", ".join(
        f"{k} {v:.1f} → {ft['analysis_s'].get(k, 0):.1f}" for k, v in m["timing"].get("analysis_s", {}).items()), flush=True)


def saliency_bytes(run_dir: Path, explainer: str) -> int:
    return sum(dir_bytes(p / "saliency" / explainer) for p in (run_dir / "arrays").glob("part-*.zarr"))


LIGHT = dict(explainers=["gradient", "gradcam", "random"], metrics=["pointing_game", "iosr", "sparseness", "complexity"],
             uncertainty={"enabled": False}, counterfactual={"enabled": False})


def pipeline_report(tmp: Path) -> None:
    """Pipelined against sequential runs of the same configuration, alternated."""
    from xai_core.runner import run

    repeats = env_int("BENCH_PIPELINE_REPEATS", 3)
    print(f"   -- pipelined runner against the sequential one, same process, {repeats} alternating rounds", flush=True)
    # parts of 4 images: the default configuration's few images still make several parts to overlap
    for label, n, over in (("default demo configuration", env_int("BENCH_PIPELINE_IMAGES", 8),
                            {"batch_size": env_int("BENCH_PIPELINE_BATCH", 4)}),
                           ("light configuration", env_int("BENCH_PIPELINE_LIGHT_IMAGES", 256), LIGHT)):
        if n == 0:  # BENCH_PIPELINE_IMAGES=0: that configuration is skipped
            continue
        warm = with_fast_forward(demo_config(tmp / f"warm-{label}", limit=1, **over), "off")
        run(warm, warm.out, progress=False)
        rates, ratios, timings, cpu = {True: [], False: []}, [], {True: [], False: []}, {True: [], False: []}
        for r in range(repeats):
            order = (False, True) if r % 2 == 0 else (True, False)
            for pipelined in order:
                cfg = with_fast_forward(demo_config(tmp / f"p-{label}-{r}-{pipelined}", limit=n, **over), "off")
                t0, c0 = time.perf_counter(), time.process_time()
                run(cfg, cfg.out, progress=False, pipelined=pipelined)
                rates[pipelined].append(n / (time.perf_counter() - t0))
                cpu[pipelined].append(time.process_time() - c0)  # every thread's CPU time: less load-bound
                timings[pipelined].append(manifest(cfg.out)["timing"])
                shutil.rmtree(cfg.out, ignore_errors=True)
            ratios.append(rates[True][-1] / rates[False][-1])
            print(f"   {label}, round {r + 1} ({'sequential first' if order[0] is False else 'pipelined first'}): "
                  f"sequential {rates[False][-1]:.3f} img/s, pipelined {rates[True][-1]:.3f} img/s, "
                  f"ratio {ratios[-1]:.3f}; CPU time {cpu[False][-1]:.1f} s / {cpu[True][-1]:.1f} s "
                  f"({load_line()})", flush=True)
        threads = timings[True][0]["threads"]
        figure(f"images/s, {label}, {n} images, sequential", statistics.median(rates[False]),
               f"img/s median (min {min(rates[False]):.3f}, max {max(rates[False]):.3f}; {threads} threads)")
        figure(f"images/s, {label}, {n} images, pipelined", statistics.median(rates[True]),
               f"img/s median (min {min(rates[True]):.3f}, max {max(rates[True]):.3f})")
        figure(f"pipelined / sequential, {label}", statistics.median(ratios),
               f"× median of {repeats} rounds (min {min(ratios):.3f}, max {max(ratios):.3f})", "≥ 1")
        figure(f"CPU time, pipelined / sequential, {label}",
               statistics.median(p / q for p, q in zip(cpu[True], cpu[False])),
               "× median (all threads' CPU seconds per run: the pipeline's own cost, whatever the load)")
        for pipelined in (False, True):
            ph = {k: statistics.median(t["phases_s"].get(k, 0.0) for t in timings[pipelined])
                  for k in ("reading", "writing", "waiting")}
            bg = {k: statistics.median(t["background_s"].get(k, 0.0) for t in timings[pipelined])
                  for k in ("reading", "writing")}
            where = (f"the model waited {ph['waiting']:.2f} s; reading {bg['reading']:.2f} s and writing "
                     f"{bg['writing']:.2f} s ran beside it" if pipelined else
                     f"reading {ph['reading']:.2f} s and writing {ph['writing']:.2f} s between the parts")
            print(f"   {label}, {'pipelined' if pipelined else 'sequential'} (medians): {where}", flush=True)


def main() -> None:
    from xai_core.config import config_from_dict
    from xai_core.models.loading import load_model
    from xai_core.runner import run
    from xai_core.summary.reader import RunReader

    n = env_int("BENCH_IMAGES", 8)
    header(f"runner: default demo configuration, {n} images, one process", "python bench/runner.py")
    tmp = Path(tempfile.mkdtemp(prefix="xai-bench-runner-"))
    try:
        cfg = with_fast_forward(demo_config(tmp / "run", limit=n), "off")
        fast_cfg = with_fast_forward(demo_config(tmp / "run-fast", limit=n), "on")
        warm = with_fast_forward(demo_config(tmp / "warm-up", limit=1), "on")
        run(warm, warm.out, progress=False)
        module = load_model(cfg.model, num_classes=10).module
        best, fwd0, grad0 = per_pass_times(module)
        counts = count_passes()
        t0 = time.perf_counter()
        run(cfg, cfg.out, progress=False)
        wall = time.perf_counter() - t0
        torch_counts = dict(counts)
        counts.update(forward=0, grad=0, logits_s=0.0)
        t0 = time.perf_counter()
        run(fast_cfg, fast_cfg.out, progress=False)
        fast_wall = time.perf_counter() - t0
        _, fwd1, grad1 = per_pass_times(module)
        t_fwd, t_grad = (fwd0 + fwd1) / 2, (grad0 + grad1) / 2

        fast_counts, counts = dict(counts), torch_counts
        m = manifest(cfg.out)
        passes = m["timing"]["model_passes"]
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
        fast_report(cfg, fast_cfg, n, wall, fast_wall, counts, fast_counts)

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
        pipeline_report(tmp)
        print(f"   after: {machine()}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pipeline_only() -> None:
    header("runner: pipelined against sequential, one process", "python bench/runner.py pipeline")
    tmp = Path(tempfile.mkdtemp(prefix="xai-bench-pipeline-"))
    try:
        pipeline_report(tmp)
        print(f"   after: {machine()}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["pipeline"]:
        pipeline_only()
    elif len(sys.argv) > 1:
        sys.exit(__doc__)
    else:
        main()
