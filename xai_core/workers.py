"""Which Dask workers a local cluster starts: one per visible GPU, each pinned to its GPU.

``xai-core run --workers N`` on a machine with GPUs starts one worker process per visible GPU
(:func:`plan_workers`), each with ``CUDA_VISIBLE_DEVICES`` set to its GPU in the worker's
environment before it starts (:func:`pinned_cluster`), so that it sees that GPU alone, as
``cuda:0``. Without a GPU (or with ``model.device: cpu``) the plan is N workers with the
driver's environment, as before GPUs were considered. :mod:`.distributed` runs the shards.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from dataclasses import dataclass

from .config import RunConfig
from .errors import ConfigError


@dataclass(frozen=True)
class WorkerPlan:
    """The local cluster to start: one environment per worker process (``{}``: as the
    driver's), the GPUs they are pinned to, and a note for the user when the plan differs
    from what was asked."""

    envs: tuple[dict, ...]
    gpus: tuple[str, ...] = ()
    note: str | None = None

    @property
    def n_workers(self) -> int:
        return len(self.envs)


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, named as ``CUDA_VISIBLE_DEVICES`` names them
    (indices or ``GPU-…`` UUIDs; ``0…n-1`` when it is unset); empty without CUDA."""
    from .devices import cuda_count

    n = cuda_count()
    if n == 0:
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [s.strip() for s in env.split(",") if s.strip()] if env is not None else [str(i) for i in range(n)]
    return names[:n]


def plan_workers(workers: int, gpus, device: str = "auto") -> WorkerPlan:
    """The workers of ``--workers N`` for a model on ``device`` (``model.device``) on a machine
    whose visible GPUs are ``gpus`` (:func:`visible_gpus`).

    * no GPU, or ``device: cpu``: N workers with the driver's environment (as before GPUs
      were considered);
    * ``auto`` / ``cuda`` with G GPUs: one worker per GPU, min(N, G) of them, worker i pinned
      to the i-th visible GPU by ``CUDA_VISIBLE_DEVICES`` (it sees that GPU alone, as
      ``cuda:0``): two workers on one GPU would only share its time and memory;
    * ``cuda:K``: one worker, pinned to the K-th visible GPU.
    """
    if workers < 1:
        raise ConfigError(f"workers is {workers}; expected ≥ 1 (or a --scheduler address)")
    gpus = [str(g) for g in gpus]
    device = str(device or "auto")
    if device == "cpu" or not gpus or not (device in ("auto", "cuda") or device.startswith("cuda:")):
        return WorkerPlan(envs=tuple({} for _ in range(workers)))
    if device.startswith("cuda:"):
        index = device.split(":", 1)[1]
        if not index.isdigit() or int(index) >= len(gpus):
            raise ConfigError(f"model.device is {device!r} but {len(gpus)} GPU(s) are visible "
                              f"(CUDA_VISIBLE_DEVICES {','.join(gpus)}); expected cuda:0 … cuda:{len(gpus) - 1}")
        chosen = [gpus[int(index)]]
        note = f"model.device {device} names one GPU: one worker on it" if workers > 1 else None
    else:
        chosen = gpus[:workers]
        note = (f"{workers} workers asked for, {len(gpus)} GPU(s) visible: one worker per GPU"
                if workers > len(gpus) else None)
    return WorkerPlan(envs=tuple({"CUDA_VISIBLE_DEVICES": g} for g in chosen), gpus=tuple(chosen), note=note)


def worker_config(config: RunConfig, plan: WorkerPlan) -> RunConfig:
    """The configuration the workers run: a worker pinned to one GPU sees it as ``cuda:0``,
    so an explicit ``cuda:K`` becomes ``cuda`` there (the manifest keeps the user's)."""
    device = getattr(config.model, "device", None)
    if plan.gpus and isinstance(device, str) and device.startswith("cuda:"):
        return dataclasses.replace(config, model=dataclasses.replace(config.model, device="cuda"))
    return config


def pinned_cluster(envs: tuple[dict, ...], options: dict):
    """A LocalCluster whose i-th worker process starts with ``envs[i]`` set (its nanny's
    ``env``: set before the worker imports anything, so before CUDA initialises). The pattern
    of dask-cuda's LocalCUDACluster, which does not install beside our dask pin (its
    rapids-dask-dependency pins another dask)."""
    from dask.distributed import LocalCluster
    from distributed.worker_memory import parse_memory_limit

    names = [f"worker-{i}" for i in range(len(envs))]
    by_name = dict(zip(names, envs))

    class PinnedCluster(LocalCluster):
        def new_worker_spec(self):
            name = next(n for n in names if n not in self.worker_spec)
            spec = copy.deepcopy(self.new_spec)
            spec["options"]["env"] = {**(spec["options"].get("env") or {}), **by_name[name]}
            return {name: spec}

    # What LocalCluster gives each of n workers (it starts none here: scale() adds them).
    memory = parse_memory_limit("auto", 1, len(envs), logger=logging.getLogger(__name__))
    cluster = PinnedCluster(n_workers=0, memory_limit=memory, **options)
    cluster.scale(len(envs))
    return cluster
