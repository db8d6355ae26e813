"""CPU threads (``threads:`` / ``--threads N``, xai_core/threads.py): one explainer's time with
torch's default intra-op threads against one thread, in the same process, back to back.

Issue 15 measured XRAI alone at 48 s with torch's default threads and 3.1 s with one on a
loaded 2-core machine: an intra-op pool as large as the machine's cores, on cores other jobs
also use, spends its time at barriers waiting for preempted threads. This script explains the
top class of the first ``BENCH_THREADS_IMAGES`` demo test images (default 4) with XRAI (its
default 50 steps) and with occlusion (forward passes only), alternating the thread counts
``BENCH_THREADS_REPEATS`` times (default 3), and prints each time, the median ratio and the
spread. The figures depend on the machine's load, printed before and after: on an idle
machine both settings are close; the more the cores are shared, the more one thread wins.

Run: ``python bench/threads.py``.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

DEFAULT_THREADS = torch.get_num_threads()  # torch's own default, read before anything changes it

from _common import ROOT, env_int, figure, header, load_line  # noqa: E402

METHODS = (("xrai", {}), ("occlusion", {"window": 16, "stride": 8}))


def demo_handle(n: int):
    from xai_core.data import DatasetSpec, open_dataset, prepare_batch
    from xai_core.demo import IMAGE_SIZE, WEIGHTS_PATH
    from xai_core.demo.dataset import ensure_demo_dataset
    from xai_core.demo.runner import demo_config_dict
    from xai_core.models.loading import ModelSpec, load_model

    data = ROOT / "data" / "demo"
    ensure_demo_dataset(data)
    model = demo_config_dict(data, "unused")["model"]
    if not WEIGHTS_PATH.is_file():
        print(f"   note: {WEIGHTS_PATH} missing; the untrained demo CNN (same cost per pass) stands in", flush=True)
        model = {**model, "factory": "xai_core.demo.model:DemoCNN"}
    spec = ModelSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in model.items()})
    handle = load_model(spec, num_classes=10)
    ds = open_dataset(DatasetSpec(kind="manifest", path=str(data / "manifest.jsonl"), split="test"))
    x = prepare_batch(ds, list(range(n)), (IMAGE_SIZE, IMAGE_SIZE)).pixels
    with torch.no_grad():
        targets = handle.predict(x).argmax(dim=1)
    return handle, x, targets


def time_explainer(explainer, handle, x, targets, threads: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    explainer.explain(handle, x, targets, batch_size=64)
    return time.perf_counter() - t0


def main() -> None:
    from xai_core.explainers import EXPLAINERS
    from xai_core.threads import available_cores

    n, repeats = env_int("BENCH_THREADS_IMAGES", 4), env_int("BENCH_THREADS_REPEATS", 3)
    header(f"threads: torch's default ({DEFAULT_THREADS}) against 1 intra-op thread, {n} demo images, "
           f"{repeats} alternations", "python bench/threads.py")
    print(f"   cores this process may use (the run's default threads): {available_cores()}; "
          f"torch's default: {DEFAULT_THREADS}", flush=True)
    handle, x, targets = demo_handle(n)
    for name, params in METHODS:
        explainer = EXPLAINERS.get(name)(params)
        time_explainer(explainer, handle, x[:1], targets[:1], 1)  # warm-up: first calls, allocator
        times = {DEFAULT_THREADS: [], 1: []}
        for r in range(repeats):
            order = (DEFAULT_THREADS, 1) if r % 2 == 0 else (1, DEFAULT_THREADS)
            for threads in order:
                times[threads].append(time_explainer(explainer, handle, x, targets, threads))
            print(f"   {name} round {r + 1}: {DEFAULT_THREADS} threads {times[DEFAULT_THREADS][-1]:.1f} s, "
                  f"1 thread {times[1][-1]:.1f} s ({load_line()})", flush=True)
        ratios = [a / b for a, b in zip(times[DEFAULT_THREADS], times[1])]
        figure(f"{name}, torch's default threads", statistics.median(times[DEFAULT_THREADS]),
               f"s median (min {min(times[DEFAULT_THREADS]):.1f}, max {max(times[DEFAULT_THREADS]):.1f})")
        figure(f"{name}, 1 thread", statistics.median(times[1]),
               f"s median (min {min(times[1]):.1f}, max {max(times[1]):.1f})")
        figure(f"{name}, default / 1 thread", statistics.median(ratios),
               f"× median (min {min(ratios):.2f}, max {max(ratios):.2f}; > 1: one thread is faster)")
    torch.set_num_threads(DEFAULT_THREADS)
    print(f"   after: {load_line()}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(__doc__)
    main()
