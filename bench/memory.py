"""Peak memory of a run of 1,000 and of 10,000 images: it must not grow with the dataset.

Each run is a separate process (``python bench/memory.py --child …``); its peak resident set
size comes from ``os.wait4``. The dataset repeats the demo test images (each line a distinct
sample id) to reach 10,000 lines. The pipeline is the real one — dataset reading, label
selection, Gradient and Grad-CAM maps, the pointing game and IoSR (localisation metrics),
committing a part every 16 images — but the network is a one-layer stand-in
(``_common.tiny_net``): memory does not depend on the network's cost, and the demo CNN would
make 10,000 images take an hour on two cores.

Run: ``python bench/memory.py`` (``BENCH_MEMORY_SIZES=1000,10000``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import DEMO_DATA, dir_bytes, figure, header, machine

GOAL_BYTES = 2 * 1024**3


def repeated_manifest(path: Path, n: int) -> Path:
    """A manifest of ``n`` lines cycling through the demo test split (absolute file paths)."""
    from xai_core.demo.dataset import ensure_demo_dataset

    src = ensure_demo_dataset(DEMO_DATA)
    rows = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("split") == "test"]
    root = src.parent.resolve()
    with open(path, "w") as f:
        for i in range(n):
            r = dict(rows[i % len(rows)])
            r["id"] = f"{r['id']}-r{i // len(rows)}"
            r["image"] = str(root / r["image"])
            r["mask"] = str(root / r["mask"])
            f.write(json.dumps(r) + "\n")
    (path.parent / "classes.json").write_text((src.parent / "classes.json").read_text())
    return path


def child(data: str, limit: int, out: str) -> None:
    from xai_core.config import config_from_dict
    from xai_core.demo import IMAGE_SIZE, MEAN, STD
    from xai_core.runner import run

    # One intra-op thread: memory does not depend on it, and on a busy machine torch's
    # spinning thread pool makes a run many times slower.
    torch.set_num_threads(1)
    cfg = config_from_dict({
        "model": {"factory": "_common:tiny_net", "activation": "sigmoid", "input_size": [IMAGE_SIZE, IMAGE_SIZE],
                  "mean": list(MEAN), "std": list(STD)},
        "dataset": {"kind": "manifest", "path": data, "limit": limit},
        "explainers": ["gradient", "gradcam"],
        "metrics": ["pointing_game", "iosr"],
        "labels": {"threshold": 0.5, "top_k": 3},
        "batch_size": 16,
        "out": out,
    })
    run(cfg, cfg.out, progress=False)


def measure(data: Path, n: int, out: Path) -> tuple[int, float]:
    """(peak RSS in bytes, wall seconds) of a child run of ``n`` images."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(data), str(n), str(out)])
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"memory benchmark child ({n} images) failed with exit code {proc.returncode}")
    return usage.ru_maxrss * 1024, time.perf_counter() - t0  # ru_maxrss is in KiB on Linux


def main() -> None:
    sizes = [int(s) for s in os.environ.get("BENCH_MEMORY_SIZES", "1000,10000").split(",")]
    header(f"memory: peak RSS of one-process runs of {' and '.join(f'{s:,}' for s in sizes)} images "
           "(Gradient + Grad-CAM, pointing game + IoSR; one-layer stand-in network)",
           "python bench/memory.py")
    tmp = Path(tempfile.mkdtemp(prefix="xai-bench-memory-"))
    try:
        data = repeated_manifest(tmp / "manifest.jsonl", max(sizes))
        peaks = {}
        for n in sizes:
            out = tmp / f"run{n}"
            peak, wall = measure(data, n, out)
            peaks[n] = peak
            figure(f"peak RSS, {n:,} images", peak / 2**20, f"MiB ({wall:.0f} s, {n / wall:.0f} img/s, "
                   f"{dir_bytes(out) / 2**20:.0f} MiB on disk)", "< 2048 MiB")
            shutil.rmtree(out, ignore_errors=True)
        if len(sizes) >= 2:
            lo, hi = peaks[sizes[0]], peaks[sizes[-1]]
            figure(f"peak RSS growth, {sizes[-1]:,} vs {sizes[0]:,} images", (hi - lo) / lo * 100, "%", "within ±20 %")
        ok = all(p < GOAL_BYTES for p in peaks.values())
        print(f"   every run under 2 GB: {'yes' if ok else 'NO'}", flush=True)
        print(f"   after: {machine()}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"] and len(sys.argv) == 5:
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif len(sys.argv) > 1:
        sys.exit(__doc__)
    else:
        main()
