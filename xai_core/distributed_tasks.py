"""What a Dask worker runs for a distributed run (:mod:`xai_core.distributed` is the driver):
the shards a run is cut into, each worker thread's kept :class:`~xai_core.engine.RunContext`,
and the tasks — the fast-forward decision, a shard's parts (computed and committed by the worker
itself), the sanity check. Every task returns counts, timings and records only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import threading
import time

from .config import RunConfig
from .engine import RunContext, compute_part, load_part, sanity_checks
from .errors import ConfigError
from .pipeline import PartPipeline
from .summary.writer import committed_parts, write_part

#: At most this many parts per shard: a retried shard recomputes at most one part, but a
#: long shard delays progress reports and balances badly at the end of a run.
MAX_SHARD_PARTS = 16
#: Shards per worker when the run is split: enough to keep workers busy until the end.
SHARDS_PER_WORKER = 4

# (configuration key, thread id) -> RunContext. One entry per worker thread: explainers
# register hooks on the model, so threads of one worker must not share it.
_CONTEXTS: dict[tuple[str, int], RunContext] = {}
_CONTEXTS_LOCK = threading.Lock()


def config_key(config: RunConfig) -> str:
    """A stable digest of what a worker context depends on (the worker-side cache key): the
    configuration less its output directory."""
    blob = json.dumps({**config.to_dict(), "out": None}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def make_shards(parts: list[int], n_workers: int, shard_parts: int | None = None) -> list[list[int]]:
    """Split ``parts`` (ascending) into runs of consecutive parts of near-equal length.

    With ``shard_parts`` unset: ``SHARDS_PER_WORKER`` shards per worker, at most
    ``MAX_SHARD_PARTS`` parts each.
    """
    if not parts:
        return []
    if shard_parts is None:
        n_shards = max(math.ceil(len(parts) / MAX_SHARD_PARTS), min(len(parts), SHARDS_PER_WORKER * max(n_workers, 1)))
    else:
        if shard_parts < 1:
            raise ConfigError(f"shard_parts is {shard_parts}; expected ≥ 1")
        n_shards = math.ceil(len(parts) / shard_parts)
    base, extra = divmod(len(parts), n_shards)
    shards, i = [], 0
    for k in range(n_shards):
        n = base + (k < extra)
        shards.append(parts[i:i + n])
        i += n
    return shards


# ---- worker side ------------------------------------------------------------------------------
def _prepare_process(sys_path: list[str], threads: int | None = None) -> None:
    # A model factory may live in a module importable only from the driver's sys.path
    # (its cwd, a tests folder): put the driver's entries first, in the driver's order.
    missing = [p for p in sys_path if p not in sys.path]
    sys.path[:0] = missing
    import torch

    # Dask counts one core per worker thread (its nanny also sets OMP_NUM_THREADS=1); torch's
    # own intra-op pool would otherwise oversubscribe the cores N-fold. `threads:` overrides.
    n = 1 if threads is None else threads
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    _undo_malloc_trim()


_MALLOPT_DONE = False


def _undo_malloc_trim() -> None:
    """Undo the nanny's ``MALLOC_TRIM_THRESHOLD_=65536`` (Dask's default pre-spawn
    environment). Setting it switches off glibc's dynamic mmap threshold, so every tensor
    above 128 KiB is mmap-ed and unmapped again, page faults included: measured here, a run
    took 2.3× as long in a worker as in a plain process with the same single thread. Large
    thresholds restore plain-process speed; the worker's memory still returns to the system
    when a shard's tensors are freed. No-op off glibc."""
    global _MALLOPT_DONE
    if _MALLOPT_DONE or not os.environ.get("MALLOC_TRIM_THRESHOLD_"):
        return
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 64 << 20)
        libc.mallopt(m_trim_threshold, 256 << 20)
    except (OSError, AttributeError):  # not glibc: nothing to undo
        pass
    _MALLOPT_DONE = True


def _context_key(key: str, fast_forward: dict | None) -> str:
    return f"{key}:{json.dumps(fast_forward, sort_keys=True, default=str)}" if fast_forward else key


def _keep_context(key: str, ctx: RunContext) -> None:
    """Keep ``ctx`` as this thread's only context (one configuration per thread: memory stays bounded)."""
    tid = threading.get_ident()
    with _CONTEXTS_LOCK:
        for k in [k for k in _CONTEXTS if k[1] == tid]:
            del _CONTEXTS[k]
        _CONTEXTS[(key, tid)] = ctx


def _worker_context(config: RunConfig, key: str, fast_forward: dict | None = None) -> RunContext:
    """The thread's context for ``config``, built once; ``fast_forward``: the run's decision
    (None: decide here, as :func:`decide_on_worker` does for the driver)."""
    key = _context_key(key, fast_forward)
    with _CONTEXTS_LOCK:
        ctx = _CONTEXTS.get((key, threading.get_ident()))
    if ctx is None:
        ctx = RunContext.build(config, fast_forward=fast_forward)
        _keep_context(key, ctx)
    return ctx


def decide_on_worker(config: RunConfig, key: str, sys_path: list[str]) -> dict:
    """The run's fast-forward decision, made once on a worker (the hardware that will run the
    parts; the driver loads no model) and recorded by the driver; every shard then follows it.
    The context built for it is kept, under the decision it made, for that worker's shards."""
    _prepare_process(sys_path, config.threads)
    ctx = RunContext.build(config)
    decided = dict(ctx.fast_forward or {})
    _keep_context(_context_key(key, decided), ctx)
    return decided


def run_shard(config: RunConfig, key: str, out_dir: str, shard: list[tuple[int, list[int]]],
              sys_path: list[str], pipelined: bool = True, fast_forward: dict | None = None) -> dict:
    """Compute and commit the uncommitted parts of one shard (runs on a worker), reading
    ahead and writing behind the model as the single-process runner does (:mod:`.pipeline`),
    with the run's fast-forward decision ``fast_forward``.

    shard: (part, dataset indices) pairs. Returns small bookkeeping only: parts computed,
    parts found committed (by an earlier attempt of this shard), samples, model passes
    (images through the network), per-explainer/metric seconds, the pipeline's reading and
    writing seconds and the worker's ``CUDA_VISIBLE_DEVICES``.
    """
    t_setup = time.perf_counter()
    _prepare_process(sys_path, config.threads)
    ctx = _worker_context(config, key, fast_forward)  # built once per worker thread: the model, the fast path
    setup_s = time.perf_counter() - t_setup
    # Only attempts of this very shard write its parts, so one look before starting suffices.
    done = committed_parts(out_dir)
    passes0 = ctx.model.passes
    stats0 = {k: dict(v) for k, v in ctx.stats.items()}
    indices = dict(shard)
    todo = [p for p, _ in shard if p not in done]
    t0 = time.perf_counter()
    pipe = PartPipeline(todo, lambda p: load_part(ctx, indices[p]),
                        lambda p, result: write_part(out_dir, p, **result), background=pipelined)
    with pipe:
        for part, batch in pipe.batches():
            pipe.commit(part, compute_part(ctx, part, indices[part], batch=batch))
    delta = {k: {n: v - stats0.get(k, {}).get(n, 0.0) for n, v in d.items()} for k, d in ctx.stats.items()}
    return {"computed": todo, "skipped": [p for p, _ in shard if p in done],
            "samples": sum(len(ix) for _, ix in shard),
            "passes": ctx.model.passes - passes0, "seconds": time.perf_counter() - t0,
            "explain_s": delta.get("explain_s", {}), "metric_s": delta.get("metric_s", {}),
            "analysis_s": delta.get("analysis_s", {}), "pid": os.getpid(),
            "setup_s": setup_s, "reading_s": pipe.stats["read"], "writing_s": pipe.stats["write"],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "record": _worker_record(ctx)}


def sanity_on_worker(config: RunConfig, key: str, sys_path: list[str], fast_forward: dict | None = None) -> dict:
    """The randomisation sanity check, on a worker: where the parts ran, on the model's device
    (a driver — a laptop in front of a GPU cluster — may have no GPU to load the model on).
    Returns the manifest's ``sanity`` entry, the passes it made and the worker's record."""
    _prepare_process(sys_path, config.threads)
    ctx = _worker_context(config, key, fast_forward)
    passes0 = ctx.model.passes
    result = sanity_checks(ctx)
    return {"sanity": result, "passes": ctx.model.passes - passes0, "record": _worker_record(ctx)}


def _worker_record(ctx: RunContext) -> dict:
    """Where this worker's passes ran: device, precision, batch sizes (the manifest's
    ``model.workers``), and the GPU it was pinned to."""
    return {**ctx.model_record(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
