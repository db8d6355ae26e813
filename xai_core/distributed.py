"""Distributed runs on a Dask cluster: workers compute and commit parts, the driver owns the
manifest. This module is the driver; what the workers run is in :mod:`xai_core.distributed_tasks`.

Units of work:

* a *part* is one batch of ``config.batch_size`` consecutive dataset indices
  (:func:`~xai_core.engine.part_indices`), computed by :func:`~xai_core.engine.compute_part`
  (seeded per part, hence identical wherever it runs) and committed atomically by
  :func:`~xai_core.summary.writer.write_part`;
* a *shard* is a run of consecutive parts, one Dask task.

Each worker thread builds the :class:`~xai_core.engine.RunContext` (dataset, model,
explainers, metrics) once per configuration and keeps it for later shards, computes the parts
of its shard that are not committed yet, writes them itself and returns only counts and
timings. The driver creates (or reopens) the manifest, submits the shards that still have
uncommitted parts, records progress as shards finish and writes the final status; it never
loads the model nor touches an image or a map.

Failures: if a worker process dies mid-shard, the scheduler reschedules the shard on another
worker (up to ``distributed.scheduler.allowed-failures`` times, default 3). The retry skips
the parts the dead attempt had already committed, so only the part in flight is recomputed.
An exception raised by the computation (a bad image, a model error) is not retried: it fails
the run, and ``--resume`` finishes it later, per shard again.

The workers write into ``out_dir`` themselves and read the dataset from the paths in the
configuration: on a multi-machine cluster these must be on a shared file system, at the same
absolute paths.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path

from .axioms import run_diagnostics
from .config import RunConfig
from .data import open_dataset
from .distributed_tasks import (MAX_SHARD_PARTS, SHARDS_PER_WORKER, config_key, decide_on_worker,  # noqa: F401
                                make_shards, run_shard, sanity_on_worker)
from .engine import RunContext, check_capabilities, check_localisation, part_indices
from .errors import ConfigError, XaiError
from .progress import RunProgress, format_seconds, time_summary
from .runner import INTERRUPTED, as_xai_error, fail, final_progress, open_writer, owned, recorded_fast_forward
from .summary.writer import committed_parts
from .threads import check_threads
from .workers import WorkerPlan, pinned_cluster, plan_workers, visible_gpus, worker_config

# ---- driver side ------------------------------------------------------------------------------
@contextlib.contextmanager
def dask_client(workers: int = 0, scheduler: str | None = None, plan: WorkerPlan | None = None):
    """A ``distributed.Client`` on a new local cluster bound to 127.0.0.1 (one thread per
    worker, no dashboard) of ``workers`` processes, or of ``plan``'s (one environment per
    worker: the GPU it is pinned to), or on the existing cluster at ``scheduler``."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="15s")
        except (OSError, TimeoutError, ValueError) as e:
            raise ConfigError(f"cannot reach the Dask scheduler {scheduler!r} ({e}); "
                              "expected the tcp://HOST:PORT of a running `dask scheduler`") from e
        with client:
            try:
                client.wait_for_workers(1, timeout=60)
            except TimeoutError as e:
                raise ConfigError(f"the Dask scheduler {scheduler!r} has no worker after 60 s; "
                                  "start some with `dask worker " + scheduler + " --nthreads 1`") from e
            yield client
        return
    plan = plan or plan_workers(workers, [])
    # silence_logs: a worker's last heartbeat racing the scheduler's shutdown logs a harmless
    # traceback; failures of our tasks still reach the driver through their futures.
    options = dict(threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                   silence_logs=logging.CRITICAL)
    if not any(plan.envs):
        with LocalCluster(n_workers=plan.n_workers, **options) as cluster, Client(cluster) as client:
            yield client
        return
    with pinned_cluster(plan.envs, options) as cluster, Client(cluster) as client:
        client.wait_for_workers(plan.n_workers, timeout=120)
        yield client


# What only the single-process runner does (issue 24): each needs the whole run's predictions or
# ranking between parts, which the Dask driver, whose workers compute parts independently, lacks.
LOCAL_ONLY = {"sample": "explains a per-tag sample chosen from every prediction",
              "budget": "cuts the plan, which probes the model in the driver",
              "stop_when": "stops when the ranking over the parts so far is settled"}


def check_local_only(config: RunConfig) -> None:
    """A one-line ConfigError, before anything is written, for a setting Dask does not support."""
    given = [k for k, on in (("sample", config.sample.enabled), ("budget", config.budget is not None),
                             ("stop_when", config.stop_when is not None)) if on]
    if given:
        k = given[0]
        raise ConfigError(f"{k} is set; a Dask run (--workers/--scheduler) does not support it ({k} "
                          f"{LOCAL_ONLY[k]}): run without Dask, or remove {', '.join(given)}")


def run_distributed(config: RunConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
                    workers: int = 0, scheduler: str | None = None, progress: bool = True,
                    shard_parts: int | None = None, force: bool = False, pipelined: bool = True,
                    gpus=None) -> Path:
    """Run (or finish) ``config`` into ``out_dir`` on Dask; returns the run directory.

    Same summary as :func:`xai_core.runner.run` (rows in another order within tables is the
    only difference a reader can see). ``workers``: size of a local cluster to start (on a
    machine with GPUs, one worker per visible GPU: :func:`plan_workers`); ``scheduler``:
    address of an existing one (exactly one of the two). ``shard_parts``: parts per task
    (default: see :func:`make_shards`); ``pipelined``: see :func:`xai_core.runner.run`;
    ``gpus``: the visible GPUs to plan with (default :func:`visible_gpus`).
    """
    if bool(workers) == bool(scheduler):
        raise ConfigError(f"workers={workers!r}, scheduler={scheduler!r}: give exactly one of "
                          "--workers N (local cluster) and --scheduler tcp://HOST:PORT")
    check_local_only(config)
    report = RunProgress(progress)
    out_dir = Path(out_dir).resolve()
    check_threads(config.threads)
    plan = None if scheduler else plan_workers(workers, visible_gpus() if gpus is None else gpus,
                                               getattr(config.model, "device", "auto"))
    dataset = open_dataset(config.dataset)
    explainers, metrics = config.instantiate()
    check_localisation(dataset, metrics, config)
    check_capabilities(None, config, explainers)  # before the manifest exists, as without Dask
    # The manifest needs no model: the driver stays light, workers load it.
    ctx = RunContext(config, dataset, None, explainers, metrics)
    batches = part_indices(len(dataset), config.batch_size)
    with owned(out_dir):
        decided = recorded_fast_forward(out_dir) if resume else None
        writer = open_writer(ctx, out_dir, len(batches), resume=resume, overwrite=overwrite, force=force)
        return _drive(config, ctx, writer, out_dir, batches, plan, scheduler, report, shard_parts, pipelined, decided)


def _drive(config, ctx, writer, out_dir, batches, plan, scheduler, report, shard_parts, pipelined, decided) -> Path:
    dataset = ctx.dataset
    done = committed_parts(out_dir)
    done_samples = sum(len(batches[p]) for p in done if p < len(batches))
    done_parts = len([p for p in done if p < len(batches)])
    todo = [p for p in range(len(batches)) if p not in done]
    totals = {"computed": 0, "skipped": 0, "passes": 0, "samples": 0, "explain_s": {}, "metric_s": {},
              "analysis_s": {}, "setup_s": 0.0, "reading_s": 0.0, "writing_s": 0.0, "gpus": set(),
              "records": []}
    t0, n_workers, futures, bar = time.perf_counter(), 0, [], None
    phases = {"setup": t0 - report.started}
    try:
        if plan is not None:
            report.line(f"workers: starting {plan.n_workers} local Dask worker(s)"
                        + (f", one per GPU (CUDA_VISIBLE_DEVICES {', '.join(plan.gpus)})" if plan.gpus else "")
                        + (f"; {plan.note}" if plan.note else "") + "…")
        with dask_client(scheduler=scheduler, plan=plan) as client:
            n_workers = len(client.scheduler_info()["workers"])
            run_cfg = worker_config(config, plan) if plan is not None else config
            key, where = config_key(run_cfg), str(out_dir)
            env = [os.getcwd(), *sys.path]
            if decided is None and todo:  # decided once, before any part, and recorded
                with report.timed_line("fast path: deciding once on a worker, for every worker…") as line:
                    decided = client.submit(decide_on_worker, run_cfg, key, env, pure=False,
                                            key=f"xai-decide-{key}-{time.time_ns()}").result()
                    line["done"] = f"fast path: {decided.get('backend')} for every worker; {{s}}"
                writer.manifest["model"]["fast_forward"] = decided
                writer.flush(force=True)
            phases["setup"] += time.perf_counter() - t0
            t_parts = time.perf_counter()
            report.line(f"setup: {len(dataset)} items in {len(batches)} parts ({len(todo)} to compute) on "
                        f"{n_workers} worker(s); {format_seconds(phases['setup'])}")
            bar = report.bar(total=len(dataset), initial=done_samples, unit="img", desc="explaining")
            shards = make_shards(todo, n_workers, shard_parts)
            futures = [client.submit(run_shard, run_cfg, key, where, [(p, batches[p]) for p in shard], env, pipelined,
                                     decided,
                                     pure=False, key=f"xai-shard-{key}-{shard[0]:06d}-{time.time_ns()}")
                       for shard in shards]
            first = {f.key: shard for f, shard in zip(futures, shards)}
            from dask.distributed import as_completed

            for fut in as_completed(futures):
                res = _result(fut, first[fut.key])
                _accumulate(totals, res)
                done_samples += res["samples"]
                done_parts += len(res["computed"]) + len(res["skipped"])
                bar.update(res["samples"])
                writer.progress(done_samples, done_parts)
            bar.close()
            phases["parts"] = time.perf_counter() - t_parts
            t_sanity = time.perf_counter()
            if config.sanity.enabled:  # on a worker, after the shards: a handful of images
                with report.timed_line("sanity check: on a worker…") as line:
                    res = client.submit(sanity_on_worker, run_cfg, key, env, decided, pure=False,
                                        key=f"xai-sanity-{key}-{time.time_ns()}").result()
                    line["done"] = f"sanity check: {len(res['sanity'] or {})} explainers on a worker; {{s}}"
                writer.manifest["sanity"] = res["sanity"]
                totals["records"].append(res["record"])
                totals["analysis_s"]["sanity"] = time.perf_counter() - t_sanity
                totals["passes"] += res["passes"]
            phases["sanity"] = time.perf_counter() - t_sanity
        # Each worker resolved the device and its batch sizes: the distinct records, in order.
        records = []
        for r in totals["records"]:
            if r not in records:
                records.append(r)
        writer.manifest["model"]["workers"] = records
        t_finish = time.perf_counter()
        report.line(f"finishing: recounting the {len(batches)} committed parts and the measured signs of their maps…")
        if not final_progress(writer, out_dir, batches):
            raise XaiError(f"{out_dir}: some parts are still missing after every shard finished; finish with --resume")
    except KeyboardInterrupt:
        _cancel(futures)
        fail(writer, "interrupted", INTERRUPTED)
        raise
    except Exception as e:
        _cancel(futures)
        err = as_xai_error(e, str(out_dir))
        fail(writer, "failed", str(err))
        if err is e:
            raise
        raise err from e
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    n_new = totals["samples"]
    analyses = {k: v for k, v in totals["analysis_s"].items() if k != "sanity"}
    timing = {
        "seconds": round(wall, 3),
        "images_per_s": round(n_new / wall, 3) if wall > 0 and n_new else None,
        "model_passes": totals["passes"],
        # Summed over workers: compute-seconds, not wall time.
        "explain_s": {k: round(v, 3) for k, v in totals["explain_s"].items()},
        "metric_s": {k: round(v, 3) for k, v in totals["metric_s"].items()},
        "analysis_s": {k: round(v, 3) for k, v in totals["analysis_s"].items()},
        "workers": n_workers,
        "parts_computed": totals["computed"],
        "parts_skipped": totals["skipped"],
        "threads": config.threads if config.threads is not None else 1,  # per worker (_prepare_process)
        "pipelined": pipelined,
        "phases_s": {k: round(v, 3) for k, v in phases.items()},
        "workers_s": {k: round(v, 3) for k, v in (("setup", totals["setup_s"]),
                                                  ("explain", sum(totals["explain_s"].values())),
                                                  ("metrics", sum(totals["metric_s"].values())),
                                                  ("analyses", sum(analyses.values())),
                                                  ("reading", totals["reading_s"]), ("writing", totals["writing_s"]))},
        "worker_gpus": sorted(totals["gpus"]),
    }
    writer.finish("complete", diagnostics=run_diagnostics(out_dir), timing=timing)
    report.line(time_summary(timing, finishing=time.perf_counter() - t_finish))
    return out_dir


def _result(fut, shard: list[int]) -> dict:
    from distributed import KilledWorker

    try:
        return fut.result()
    except KilledWorker as e:
        raise XaiError(f"parts {shard[0]}–{shard[-1]} killed a Dask worker on every attempt ({e}); the "
                       "workers may run out of memory: lower batch_size or explain_batch_size, then "
                       "finish with --resume") from e


def _accumulate(totals: dict, res: dict) -> None:
    totals["computed"] += len(res["computed"])
    totals["skipped"] += len(res["skipped"])
    totals["passes"] += res["passes"]
    totals["samples"] += res["samples"]
    totals["setup_s"] += res.get("setup_s", 0.0)
    totals["reading_s"] += res.get("reading_s", 0.0)
    totals["writing_s"] += res.get("writing_s", 0.0)
    if res.get("cuda_visible_devices"):
        totals["gpus"].add(res["cuda_visible_devices"])
    if res.get("record"):
        totals["records"].append(res["record"])
    for k in ("explain_s", "metric_s", "analysis_s"):
        for name, v in res.get(k, {}).items():
            totals[k][name] = totals[k].get(name, 0.0) + v


def _cancel(futures) -> None:
    for f in futures:
        with contextlib.suppress(Exception):
            f.cancel()
