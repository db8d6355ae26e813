"""The runner on one GPU (issue 15, item 6): throughput, pass efficiency, GPU time, speed-up over
the CPU runner, and how far scores move — GPU vs CPU, bf16 / fp16 vs fp32.

Two workloads, each run on the device after an untimed one-image warm-up run (CUDA context,
cuDNN kernel choice, imports):

* **demo** — the default demo configuration (``xai-core demo``: 7 explainers, 8 metrics with
  50-step curves, MC-dropout uncertainty, counterfactuals; the sanity check, a fixed per-run
  cost, left out as in ``bench/runner.py``) on the first 64 test images;
* **photos** — EfficientNet-Lite0 (bundled ImageNet weights) at 224 × 224 px with the photos
  demo's explainers and metrics (``xai-core demo --photos``) but the default 50-step deletion
  and insertion curves, on copies of the six photos (24 images).

For each it prints:

* images/s and model passes (images through the network), and the batch the run chose
  (``explain_batch_size: auto``: the largest forward batch that fits and still pays, probed at
  start; ``model.batches`` in the manifest, with any out-of-memory back-off);
* per-pass time at that batch, forward only and forward + backward to the input (CUDA-
  synchronised, best of 5);
* pass efficiency = (forward passes × t_forward + gradient passes × t_forward+backward) / wall,
  the share of the run the passes alone would take (floor ≥ 0.8 on the GPU); a forward hook
  splits the passes by kind;
* GPU time in passes: CUDA events recorded around every forward call of the network and every
  ``torch.autograd.grad`` (outermost calls), summed, over the run's wall time. It bounds the
  kernel-busy share from above (an event pair also spans gaps where the GPU waits for the host
  to launch the next kernel), and shows how much of the wall the device spends outside passes;
* the CPU runner's images/s, measured here on the first few images of the same configuration
  with ``device: cpu`` (torch on all this machine's cores; the ONNX fast path off, as in the
  GPU runs, so that the score comparison below sees one change only), and the speed-up (floor for EfficientNet-Lite0
  ≥ 50×);
* the largest |raw score difference| per metric between the GPU run and that CPU run, on the
  images both explained (same seeds and perturbations: what remains is float32 rounding in
  another order, plus discontinuities it can tip — a tie, an argmax, a superpixel);
* the same per metric for ``model.precision: bf16`` (and ``fp16`` on CUDA) against fp32 on the
  device, on the first 16 images.

Budget: about 5 minutes on one H200-class GPU (most of it the CPU reference runs); the elapsed
time is printed after each phase. The last lines are Markdown table rows to paste into
BENCHMARKS.md, section "GPU".

Run on a GPU machine: ``python bench/gpu.py`` (``--device cuda:1`` for another GPU;
``--demo-images`` / ``--photo-images`` / ``--cpu-images`` change the sizes). On the CPU, as a
smoke run of the script itself: ``python bench/gpu.py --device cpu --quick`` (tiny sizes,
EfficientNet at 64 px, 5-step curves; its figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import ROOT, demo_config, figure, header, machine, manifest

PHOTO_COPIES = 4  # 6 photos × 4 = 24 images


class Instrument:
    """Counts passes by kind and brackets every outermost forward call of the network and every
    ``torch.autograd.grad`` with CUDA events, in each RunContext built while it is installed."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.forward = self.grad = 0
        self.pairs: list = []
        self._depth, self._open = 0, None

    def begin(self):
        if self._depth == 0 and self.cuda:
            self._open = torch.cuda.Event(enable_timing=True)
            self._open.record()
        self._depth += 1

    def end(self):
        self._depth = max(0, self._depth - 1)
        if self._depth == 0 and self.cuda and self._open is not None:
            stop = torch.cuda.Event(enable_timing=True)
            stop.record()
            self.pairs.append((self._open, stop))
            self._open = None

    def gpu_seconds(self) -> float | None:
        if not self.cuda:
            return None
        torch.cuda.synchronize()
        return sum(a.elapsed_time(b) for a, b in self.pairs) / 1e3

    def install(self):
        from xai_core.engine import RunContext

        build, grad, inst = RunContext.build.__func__, torch.autograd.grad, self

        def counted_build(cls, config):
            ctx = build(cls, config)
            module = ctx.model.module

            def post(_m, inputs, output):
                inst.end()
                n = int(inputs[0].shape[0])
                if output.requires_grad:
                    inst.grad += n
                else:
                    inst.forward += n

            module.register_forward_pre_hook(lambda _m, _i: inst.begin())
            module.register_forward_hook(post)
            return ctx

        def timed_grad(*a, **k):
            inst.begin()
            try:
                return grad(*a, **k)
            finally:
                inst.end()

        RunContext.build = classmethod(counted_build)
        torch.autograd.grad = timed_grad

        def uninstall():
            RunContext.build = classmethod(build)
            torch.autograd.grad = grad

        return uninstall


def timed_run(raw: dict, device: torch.device):
    """Run ``raw`` (a config dict) instrumented; (run dir, wall s of the part loop, instrument)."""
    from xai_core.config import config_from_dict
    from xai_core.runner import run

    inst = Instrument(device)
    uninstall = inst.install()
    try:
        out = run(config_from_dict(raw), raw["out"], progress=False, overwrite=True)
    finally:
        uninstall()
    return Path(out), manifest(out)["timing"]["seconds"], inst


def per_pass_ms(cfg_raw: dict, classes: int, batch: int, device: torch.device, repeats: int = 5):
    """(forward, forward+backward) ms per image at ``batch`` on ``device``, synchronised; the
    forward at the run's precision, the backward in float32 as the run's gradient passes."""
    from xai_core.config import config_from_dict
    from xai_core.devices import synchronize
    from xai_core.models.loading import load_model

    cfg = config_from_dict(cfg_raw)
    handle = load_model(cfg.model, num_classes=classes)
    x = torch.rand(batch, handle.channels, *cfg.model.input_size, device=device)

    def best(fn):
        fn()
        out = float("inf")
        for _ in range(repeats):
            synchronize(device)
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            out = min(out, time.perf_counter() - t0)
        return 1e3 * out / batch

    def forward():
        with torch.no_grad():
            handle._forward_only(x)

    def backward():
        xi = x.clone().requires_grad_(True)
        torch.autograd.grad(handle.module(xi)[:, 0].sum(), xi)

    fwd = best(forward)
    try:
        bwd = best(backward)
    except torch.cuda.OutOfMemoryError:  # a gradient batch of this size does not fit
        bwd = float("nan")
    return fwd, bwd


def score_diffs(run_a: Path, run_b: Path, n_images: int) -> dict:
    """{metric: (max |raw_a − raw_b|, explainer where it is, scores compared)} on the first
    ``n_images`` samples of both runs, finite values only."""
    from xai_core.summary.reader import RunReader

    key = ["sample_index", "label", "explainer", "metric"]
    a, b = (RunReader(d).scores() for d in (run_a, run_b))
    a, b = a[a.sample_index < n_images], b[b.sample_index < n_images]
    m = a.merge(b, on=key, suffixes=("_a", "_b"))
    m = m[np.isfinite(m.raw_a) & np.isfinite(m.raw_b)]
    out = {}
    for metric, g in m.groupby("metric"):
        d = (g.raw_a - g.raw_b).abs()
        out[metric] = (float(d.max()), str(g.explainer.iloc[int(np.argmax(d.to_numpy()))]), int(len(g)))
    out["_rows"] = (len(a), len(b), len(m))
    return out


def print_diffs(title: str, diffs: dict) -> None:
    rows = diffs.pop("_rows", None)
    print(f"   max |raw score difference|, {title}" + (f" ({rows[2]} scores in both runs)" if rows else ""), flush=True)
    for metric, (d, exp, n) in sorted(diffs.items()):
        figure(f"  {metric}", d, f"(worst: {exp}; {n} scores)")


def demo_workload(tmp: Path, n: int, device: str, quick: bool) -> dict:
    raw = demo_config(tmp / "demo", limit=n)
    raw["model"].update(device=device, fast_forward="off")  # on a GPU it is off anyway
    if quick:
        for m in raw["metrics"]:
            if isinstance(m, dict) and m.get("type") in ("deletion_auc", "insertion_auc"):
                m["params"] = {**m.get("params", {}), "steps": 5}
        raw["explainers"] = [e for e in raw["explainers"] if (e if isinstance(e, str) else e["type"]) != "anchors"]
    return raw


def photos_workload(tmp: Path, n: int, device: str, quick: bool) -> dict:
    from xai_core.demo.photos import PHOTO_METRICS, photos_config_dict, write_photos_dataset

    data = tmp / "photos-data"
    manifest_path = write_photos_dataset(data)
    lines = [json.loads(line) for line in manifest_path.read_text().splitlines()]
    copies = [{**line, "id": f"{line['id']}-{k}"} for k in range(max(1, -(-n // len(lines)))) for line in lines][:n]
    manifest_path.write_text("".join(json.dumps(line) + "\n" for line in copies))
    steps = 5 if quick else 50
    metrics = [({**m, "params": {**m.get("params", {}), "steps": steps}}
                if isinstance(m, dict) and m["type"] in ("deletion_auc", "insertion_auc") else m) for m in PHOTO_METRICS]
    raw = photos_config_dict(data, tmp / "photos", metrics=metrics)
    raw["model"].update(device=device, fast_forward="off")  # on a GPU it is off anyway
    raw["explain_batch_size"] = "auto"  # the photos demo fixes 16 for two CPU cores
    raw["_classes"] = 1000
    if quick:  # the same network and weights at 64 px: a smoke run on the CPU
        raw["model"]["input_size"] = [64, 64]
        raw["model"]["factory_kwargs"] = {"image_size": 64}
    return raw


def bench(name: str, raw: dict, device: torch.device, cpu_images: int, prec_images: int, t_start: float,
          budget: float) -> dict:
    classes = raw.pop("_classes", 10)
    out_root = Path(raw["out"]).parent
    n = raw["dataset"]["limit"] if raw["dataset"].get("limit") else sum(1 for _ in open(raw["dataset"]["path"]))
    print(f"\n   -- {name}: {n} images on {device}", flush=True)

    def variant(suffix: str, **over) -> dict:
        v = json.loads(json.dumps(raw))
        v["out"] = str(out_root / f"{name}-{suffix}")
        for key, value in over.items():
            if key == "limit":
                v["dataset"]["limit"] = value
            else:
                v["model"][key] = value
        return v

    timed_run(variant("warm-up", limit=1), device)  # CUDA context, kernel choice, imports
    run_dir, wall, inst = timed_run(variant("device"), device)
    m = manifest(run_dir)
    passes = m["timing"]["model_passes"]
    batch = m["model"]["batches"]["resolved"]
    fwd, bwd = per_pass_ms(variant("probe"), classes, batch, device)
    eff = (inst.forward * fwd + inst.grad * bwd) / 1e3 / wall if np.isfinite(bwd) else float("nan")
    gpu_s = inst.gpu_seconds()
    res = {"name": name, "n": n, "ips": n / wall, "passes": passes, "batch": batch, "fwd": fwd, "bwd": bwd,
           "eff": eff, "gpu_share": None if gpu_s is None else gpu_s / wall, "wall": wall}
    figure("images/s", n / wall, f"img/s ({wall:.1f} s for {n} images, part loop)")
    figure("model passes", passes, f"({passes / n:.0f} per image: {inst.forward} forward + {inst.grad} gradient)")
    figure("batch (explain_batch_size: auto)", batch, f"probe {m['model']['batches'].get('probe')}")
    print(f"   batches used: {json.dumps({k: v for k, v in m['model']['batches'].items() if k != 'probe'})}", flush=True)
    figure("per-pass time at that batch, forward", fwd, "ms/img")
    figure("per-pass time at that batch, forward+backward", bwd, "ms/img")
    figure("pass efficiency", eff, "((forward × t_fwd + gradient × t_fwd+bwd) / wall)",
           "≥ 0.8 on the GPU" if device.type == "cuda" else "")
    if gpu_s is not None:
        figure("GPU time in passes", gpu_s / wall, f"of the wall ({gpu_s:.1f} s of {wall:.1f} s; CUDA events)")
    print("   seconds per explainer: " + ", ".join(f"{k} {v:.1f}" for k, v in m["timing"]["explain_s"].items()))
    print("   seconds per metric:    " + ", ".join(f"{k} {v:.1f}" for k, v in m["timing"]["metric_s"].items()))
    print("   seconds per analysis:  " + ", ".join(f"{k} {v:.1f}" for k, v in m["timing"].get("analysis_s", {}).items()))
    print(f"   elapsed {time.perf_counter() - t_start:.0f} s", flush=True)

    k = min(cpu_images, n)
    # The CPU runner in torch on all of this machine's cores; the ONNX fast path stays off so
    # that the score comparison sees one change only (the device).
    cpu_dir, cpu_wall, _ = timed_run(variant("cpu", device="cpu", limit=k, fast_forward="off"), torch.device("cpu"))
    res["cpu_ips"] = k / cpu_wall
    res["speedup"] = res["ips"] / res["cpu_ips"]
    figure("CPU runner images/s", res["cpu_ips"], f"img/s ({k} images, device: cpu, {torch.get_num_threads()} threads)")
    figure("speed-up over the CPU runner", res["speedup"], "× (images/s)",
           "≥ 50× for EfficientNet-Lite0" if name == "photos" and device.type == "cuda" else "")
    diffs = score_diffs(run_dir, cpu_dir, k)
    res["cpu_diff"] = {mm: v[0] for mm, v in diffs.items() if not mm.startswith("_")}
    print_diffs(f"{device} vs cpu", diffs)
    print(f"   elapsed {time.perf_counter() - t_start:.0f} s", flush=True)

    res["precision"] = {}
    for prec in (("bf16", "fp16") if device.type == "cuda" else ("bf16",)):
        if time.perf_counter() - t_start > budget:
            print(f"   {prec}: skipped, past the {budget:.0f} s budget", flush=True)
            continue
        kp = min(prec_images, n)
        p_dir, p_wall, _ = timed_run(variant(prec, precision=prec, limit=kp), device)
        figure(f"images/s at {prec}", kp / p_wall, f"img/s ({kp} images; fp32 above)")
        diffs = score_diffs(p_dir, run_dir, kp)
        res["precision"][prec] = {mm: v[0] for mm, v in diffs.items() if not mm.startswith("_")}
        print_diffs(f"{prec} vs fp32 on {device}", diffs)
    return res


def markdown(results: list[dict], device: torch.device, name: str) -> None:
    print(f"\n   -- Markdown rows for BENCHMARKS.md (GPU section; {name}, {time.strftime('%Y-%m-%d')})", flush=True)
    print("| workload | images/s | CPU runner images/s | speed-up | passes/image | batch | t_fwd / t_fwd+bwd (ms/img) "
          "| pass efficiency | GPU time in passes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        share = "n/a" if r["gpu_share"] is None else f"{r['gpu_share']:.2f}"
        print(f"| {r['name']} ({r['n']} img) | {r['ips']:.3g} | {r['cpu_ips']:.3g} | {r['speedup']:.3g}× "
              f"| {r['passes'] / r['n']:.0f} | {r['batch']} | {r['fwd']:.3g} / {r['bwd']:.3g} | {r['eff']:.2f} | {share} |")
    metrics = sorted({m for r in results for m in r["cpu_diff"]})
    precs = sorted({p for r in results for p in r["precision"]})
    print("\n| metric | " + " | ".join(f"{r['name']}: {device.type} vs cpu" for r in results)
          + "".join(f" | {r['name']}: {p} vs fp32" for r in results for p in precs) + " |")
    print("|---|" + "---|" * (len(results) * (1 + len(precs))))
    for metric in metrics:
        cells = [f"{r['cpu_diff'][metric]:.2g}" if metric in r["cpu_diff"] else "–" for r in results]
        cells += [f"{r['precision'].get(p, {}).get(metric, float('nan')):.2g}" for r in results for p in precs]
        print(f"| {metric} | " + " | ".join(cells) + " |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of the script (e.g. on the CPU)")
    ap.add_argument("--only", choices=("demo", "photos"), help="one workload only")
    ap.add_argument("--demo-images", type=int, help="default 64 (--quick: 2)")
    ap.add_argument("--photo-images", type=int, help=f"default {6 * PHOTO_COPIES} (--quick: 1)")
    ap.add_argument("--cpu-images", type=int, default=None, help="images of the CPU reference runs (default 4 / 2; --quick: 1)")
    ap.add_argument("--precision-images", type=int, help="images of the bf16 / fp16 runs (default 16; --quick: 1)")
    ap.add_argument("--budget", type=float, default=270.0, help="seconds after which optional phases are skipped")
    ap.add_argument("--out", help="keep the runs in this folder (default: a temporary one, removed)")
    args = ap.parse_args(argv)
    small = args.quick
    args.demo_images = args.demo_images or (2 if small else 64)
    args.photo_images = args.photo_images or (1 if small else 6 * PHOTO_COPIES)
    args.precision_images = args.precision_images or (1 if small else 16)
    from xai_core.devices import resolve_device
    from xai_core.errors import XaiError

    try:
        device, info = resolve_device(args.device)
    except XaiError as e:
        print(f"bench/gpu.py: {e}", file=sys.stderr)
        return 2
    if device.type == "cpu" and not args.quick:
        print("   note: --device cpu without --quick runs the full sizes on the CPU (hours at 64 images on "
              "two cores); the GPU figures need a GPU", flush=True)
    header(f"GPU runner benchmark on {device} ({info['name']})", "python bench/gpu.py " + " ".join(argv or sys.argv[1:]))
    print(f"   torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
          f"{torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}, "
          f"device memory {info.get('memory_gib', 'n/a')} GiB", flush=True)
    tmp = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="xai-bench-gpu-"))
    t_start = time.perf_counter()
    results = []
    try:
        if args.only in (None, "demo"):
            raw = demo_workload(tmp, args.demo_images, str(device), args.quick)
            results.append(bench("demo", raw, device, args.cpu_images or (1 if args.quick else 4),
                                 args.precision_images, t_start, args.budget))
        if args.only in (None, "photos"):
            raw = photos_workload(tmp, args.photo_images, str(device), args.quick)
            results.append(bench("photos", raw, device, args.cpu_images or (1 if args.quick else 2),
                                 args.precision_images, t_start, args.budget))
        markdown(results, device, info["name"])
        print(f"\n   total {time.perf_counter() - t_start:.0f} s; after: {machine()}", flush=True)
    finally:
        if not args.out:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
