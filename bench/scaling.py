"""Speed-up of a 2-worker local Dask cluster over a 1-worker one, default demo configuration.

Both clusters are started and warmed up (workers import torch and xai_core) before the clock
starts, so the timed run covers what a run on a running cluster costs: the driver's manifest,
each worker loading the model once, computing and writing its parts. Parts are made small
(``batch_size`` 2) so that the few images of a quick benchmark still split into several
shards; the explanation batches (``explain_batch_size``) are the default.

Run: ``python bench/scaling.py`` (``BENCH_SCALING_IMAGES=N``; default 16).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import demo_config, env_int, figure, header, machine, manifest


def _warm() -> bool:
    import xai_core.distributed  # noqa: F401  (torch, the engine, the registries)
    from xai_core.explainers import EXPLAINERS  # noqa: F401
    from xai_core.metrics import METRICS  # noqa: F401

    return True


def timed_run(workers: int, cfg) -> tuple[float, dict]:
    from xai_core.distributed import dask_client, run_distributed

    with dask_client(workers=workers) as client:
        client.run(_warm)
        t0 = time.perf_counter()
        run_distributed(cfg, cfg.out, scheduler=client.scheduler.address, progress=False)
        return time.perf_counter() - t0, manifest(cfg.out)


def main() -> None:
    from xai_core.config import config_from_dict

    n = env_int("BENCH_SCALING_IMAGES", 16)
    header(f"scaling: default demo configuration (parts of 2 images), {n} images, 1 vs 2 Dask workers",
           "python bench/scaling.py")
    tmp = Path(tempfile.mkdtemp(prefix="xai-bench-scaling-"))
    try:
        walls = {}
        for workers in (1, 2):
            cfg = config_from_dict(demo_config(tmp / f"w{workers}", limit=n, batch_size=2))
            wall, m = timed_run(workers, cfg)
            walls[workers] = wall
            figure(f"{workers} worker{'s' if workers > 1 else ''}", n / wall,
                   f"img/s ({wall:.1f} s, {m['timing']['model_passes']} passes)")
        figure("speed-up, 2 workers over 1", walls[1] / walls[2], "×", "≥ 1.6")
        # The same parts without Dask, torch using every core in one process: what --workers
        # must beat to be worth it on this machine.
        from xai_core.runner import run

        cfg = config_from_dict(demo_config(tmp / "single", limit=n, batch_size=2))
        t0 = time.perf_counter()
        run(cfg, cfg.out, progress=False)
        single = time.perf_counter() - t0
        figure(f"one process, no Dask ({torch.get_num_threads()} torch threads)", n / single, f"img/s ({single:.1f} s)")
        figure("speed-up, 2 workers over one process without Dask", single / walls[2], "×")
        print(f"   after: {machine()}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(__doc__)
    main()
