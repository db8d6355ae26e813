"""Orchestrates a run: creates or resumes the summary, computes the missing parts in order
with a progress bar, and records the final status."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tqdm import tqdm

from . import __version__
from .config import RunConfig, config_from_dict
from .engine import RunContext, compute_part, part_indices, sanity_checks
from .errors import ConfigError, SummaryError, XaiError
from .models.loading import model_identity
from .summary.reader import read_manifest
from .summary.writer import RunWriter, committed_parts, write_part


def build_manifest(ctx: RunContext, n_parts: int) -> dict:
    cfg = ctx.config
    return {
        "xaiboard_version": __version__,
        "config": cfg.to_dict(),
        "model": {**model_identity(cfg.model), "activation": cfg.model.activation,
                  "input_size": list(cfg.model.input_size), "fast_forward": ctx.fast_forward},
        "dataset": ctx.dataset.identity(),
        "classes": ctx.classes,
        "explainers": [{**type(e).metadata(), "type": e.name, "name": e.instance_name,
                        "params": _plain(e.params)} for e in ctx.explainers],
        "metrics": [{**type(m).metadata(), "type": m.name, "name": m.instance_name,
                     "params": _plain(m.params)} for m in ctx.metrics],
        "progress": {"total_samples": len(ctx.dataset), "done_samples": 0,
                     "total_parts": n_parts, "done_parts": 0, "batch_size": cfg.batch_size},
    }


def _plain(params) -> dict:
    import dataclasses

    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(params).items()}


def resume_config(run_dir: str | Path) -> RunConfig:
    """The configuration stored in a run, to finish it exactly as it was started."""
    manifest = read_manifest(run_dir)
    if "config" not in manifest:
        raise SummaryError(f"{run_dir}: the manifest holds no configuration; cannot resume")
    raw = dict(manifest["config"])
    raw["explainers"] = [dict(p) for p in raw["explainers"]]
    raw["metrics"] = [dict(p) for p in raw["metrics"]]
    return config_from_dict(raw)


def open_writer(ctx: RunContext, out_dir: Path, n_parts: int, *, resume: bool, overwrite: bool) -> RunWriter:
    """Create the run's manifest, or reopen it to resume (checking the part count still fits).

    Shared with :mod:`.distributed`, whose driver passes a context without a model
    (``build_manifest`` reads only the config, dataset, explainers and metrics)."""
    if resume:
        writer = RunWriter.reopen(out_dir)
        if writer.manifest["progress"]["total_parts"] != n_parts:
            raise ConfigError(f"{out_dir}: the dataset changed since the run started "
                              f"({writer.manifest['progress']['total_parts']} parts then, {n_parts} now)")
        return writer
    return RunWriter.create(out_dir, build_manifest(ctx, n_parts), overwrite=overwrite)


def run(config: RunConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
        progress: bool = True, stop_after_parts: int | None = None) -> Path:
    """Run (or finish) ``config`` into ``out_dir``; returns the run directory.

    ``stop_after_parts`` ends the process early (tests use it to simulate an interruption).
    """
    out_dir = Path(out_dir)
    ctx = RunContext.build(config)
    batches = part_indices(len(ctx.dataset), config.batch_size)
    writer = open_writer(ctx, out_dir, len(batches), resume=resume, overwrite=overwrite)
    writer.manifest["model"]["fast_forward"] = ctx.fast_forward  # decided again when resuming
    done = committed_parts(out_dir)
    done_samples = sum(len(batches[p]) for p in done if p < len(batches))
    todo = [p for p in range(len(batches)) if p not in done]
    bar = tqdm(total=len(ctx.dataset), initial=done_samples, unit="img", disable=not progress,
               file=sys.stderr, dynamic_ncols=True, desc="explaining")
    t0, passes0, fast0, n_new = time.perf_counter(), ctx.model.passes, ctx.fast_passes, 0
    try:
        for k, part in enumerate(todo):
            if stop_after_parts is not None and k >= stop_after_parts:
                writer.progress(done_samples, len(batches) - len(todo) + k, force=True)
                return out_dir
            result = compute_part(ctx, part, batches[part])
            write_part(out_dir, part, **result)
            done_samples += len(batches[part])
            n_new += len(batches[part])
            bar.update(len(batches[part]))
            writer.progress(done_samples, len(batches) - len(todo) + k + 1)
    except KeyboardInterrupt:
        writer.finish("failed", error="interrupted by the user; finish with --resume")
        raise
    except XaiError as e:
        writer.finish("failed", error=str(e))
        raise
    except Exception as e:
        writer.finish("failed", error=f"{type(e).__name__}: {e}")
        raise
    finally:
        bar.close()
    t_sanity = time.perf_counter()
    sanity = sanity_checks(ctx)
    if sanity is not None:
        writer.manifest["sanity"] = sanity
        ctx.stats["analysis_s"]["sanity"] = time.perf_counter() - t_sanity
    wall = time.perf_counter() - t0
    writer.finish("complete", timing={
        "seconds": round(wall, 3),
        "images_per_s": round(n_new / wall, 3) if wall > 0 and n_new else None,
        "model_passes": ctx.model.passes - passes0,
        "fast_forward_passes": ctx.fast_passes - fast0,
        "explain_s": {k: round(v, 3) for k, v in ctx.stats["explain_s"].items()},
        "metric_s": {k: round(v, 3) for k, v in ctx.stats["metric_s"].items()},
        "analysis_s": {k: round(v, 3) for k, v in ctx.stats["analysis_s"].items()},
    })
    return out_dir
