"""Orchestrates a run: creates or resumes the summary, computes the missing parts in order
with a progress bar, and records the final status."""

from __future__ import annotations

import errno
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from . import __version__
from .config import RunConfig, config_from_dict
from .engine import RunContext, compute_part, part_indices, sanity_checks
from .errors import ConfigError, SummaryError, XaiError
from .models.loading import model_identity
from .summary.lock import RunLock
from .summary.reader import read_manifest
from .summary.writer import RunWriter, committed_parts, make_run_dir, remove_temporaries, write_part

INTERRUPTED = "interrupted by the user; finish with --resume"


def build_manifest(ctx: RunContext, n_parts: int) -> dict:
    cfg = ctx.config
    return {
        "xaiboard_version": __version__,
        "config": cfg.to_dict(),
        "model": {**model_identity(cfg.model), "activation": cfg.model.activation,
                  "input_size": list(cfg.model.input_size), "fast_forward": ctx.fast_forward,
                  # detected when model.channels is unset; none in a Dask driver (workers load the model)
                  "channels": getattr(ctx.model, "channels", None)},
        "dataset": ctx.dataset.identity(),
        "classes": ctx.classes,
        # `signed` is the instance's (Grad-CAM with relu: false is signed); RunWriter.finish
        # adds what the maps measured (has_negative) — FORMAT.md.
        "explainers": [{**type(e).metadata(), "type": e.name, "name": e.instance_name,
                        "signed": e.is_signed, "signed_declared": e.is_signed,
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


def open_writer(ctx: RunContext, out_dir: Path, n_parts: int, *, resume: bool, overwrite: bool,
                force: bool = False) -> RunWriter:
    """Create the run's manifest, or reopen it to resume after checking that the dataset and
    the model are the ones the run started with (``force`` skips that check).

    Call it holding the run's :func:`owned` lock. Shared with :mod:`.distributed`, whose driver
    passes a context without a model (``build_manifest`` reads only the config, dataset,
    explainers and metrics)."""
    if resume:
        check_identity(ctx, out_dir, read_manifest(out_dir), n_parts, force=force)
        writer = RunWriter.reopen(out_dir)
    else:
        writer = RunWriter.create(out_dir, build_manifest(ctx, n_parts), overwrite=overwrite)
    remove_temporaries(out_dir)  # left by writers that died; we hold the lock, no one else writes
    return writer


def check_identity(ctx: RunContext, out_dir: Path, manifest: dict, n_parts: int, *, force: bool = False) -> None:
    """Refuse to resume onto a changed dataset or model: the finished run would mix items
    or predictions of two versions. ``force`` accepts a changed file of the same size."""
    old_parts = (manifest.get("progress") or {}).get("total_parts")
    if old_parts != n_parts:
        raise ConfigError(f"{out_dir}: the dataset changed since the run started "
                          f"({old_parts} parts then, {n_parts} now); start a new run")
    then_ds, now_ds = manifest.get("dataset") or {}, ctx.dataset.identity()
    then_m, now_m = manifest.get("model") or {}, model_identity(ctx.config.model)
    changed = [f"dataset {k}" for k in ("n_items", "sha256") if then_ds.get(k) != now_ds.get(k)]
    changed += [f"model {k}" for k in ("weights_sha256", "torchscript_sha256", "onnx_sha256")
                if then_m.get(k) != now_m.get(k)]
    if served_model(then_m) != served_model(now_m):
        changed.append(f"served model ({_said(served_model(then_m))} then, {_said(served_model(now_m))} now)")
    if not changed:
        return
    # A changed item count is never forced: the parts would not line up with the items.
    forcible = "dataset n_items" not in changed
    if not (force and forcible):
        raise ConfigError(f"{out_dir}: the {', '.join(changed)} changed since the run started; resuming would mix "
                          "two versions in one run. Start a new run"
                          + (", or pass --force to resume anyway" if forcible else ""))


#: What identifies a model behind a V2 URL in its metadata (``server_model``): a model replaced
#: behind the same URL shows in one of these, or goes unnoticed (a V1 server has no metadata).
SERVED_IDENTITY = ("name", "versions", "platform", "inputs", "outputs")


def served_model(model: dict) -> dict | None:
    """The identifying part of a served model's recorded V2 metadata; None for a local model."""
    if not model.get("url"):
        return None
    meta = model.get("server_model") if isinstance(model.get("server_model"), dict) else {}
    return {k: meta.get(k) for k in SERVED_IDENTITY}


def _said(ident: dict | None) -> str:
    if not ident or not any(ident.values()):
        return "no metadata"
    return ", ".join(f"{k} {ident[k]}" for k in ("name", "versions", "platform") if ident.get(k) is not None) or "metadata"


@contextmanager
def owned(out_dir: Path):
    """Hold the run directory's lock (``.lock``, pid + host) while writing it. Take it before
    anything expensive (the model's setup), so a second writer is refused at once; a directory
    this creates is removed again when nothing was written into it (a refusal before the run)."""
    created = not out_dir.exists()
    make_run_dir(out_dir)
    lock = RunLock(out_dir).acquire()
    try:
        yield lock
    finally:
        lock.release()
        if created:
            try:
                out_dir.rmdir()  # only succeeds while empty
            except OSError:
                pass


def recorded_fast_forward(out_dir: Path) -> dict | None:
    """The fast-forward decision a run recorded when it started (None for runs before it did)."""
    ff = (read_manifest(out_dir).get("model") or {}).get("fast_forward")
    return ff if isinstance(ff, dict) and ff.get("backend") else None


def final_progress(writer: RunWriter, out_dir: Path, batches: list[list[int]]) -> bool:
    """Progress recounted from the committed parts (the flushed counters can lag behind a
    crash right after a commit); True when every part is committed."""
    done = [p for p in committed_parts(out_dir) if p < len(batches)]
    writer.progress(sum(len(batches[p]) for p in done), len(done), force=True)
    return len(done) == len(batches)


def fail(writer: RunWriter, status: str, error: str) -> None:
    """Record a failure; best effort, since the cause may be a full or read-only disk."""
    try:
        writer.finish(status, error=error)
    except (XaiError, OSError):
        pass


def as_xai_error(e: BaseException, where: str) -> XaiError:
    """One-line error for an exception the code did not raise on purpose."""
    if isinstance(e, XaiError):
        return e
    if isinstance(e, OSError):
        reason = "no space left on the device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        return SummaryError(f"{where}: cannot write {e.filename or 'the run'}: {reason}; free space or fix "
                            "permissions, then finish with --resume")
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return XaiError(f"{where}: {type(e).__name__}: {text}"[:500])


def run(config: RunConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
        progress: bool = True, stop_after_parts: int | None = None, force: bool = False) -> Path:
    """Run (or finish) ``config`` into ``out_dir``; returns the run directory.

    ``stop_after_parts`` ends the process early (tests use it to simulate an interruption);
    ``force`` resumes even when the dataset file or model weights changed.
    """
    out_dir = Path(out_dir)
    with owned(out_dir):  # before the model's setup: a second writer is refused at once
        decided = recorded_fast_forward(out_dir) if resume else None
        ctx = RunContext.build(config, fast_forward=decided)  # a resumed run keeps its backend
        batches = part_indices(len(ctx.dataset), config.batch_size)
        writer = open_writer(ctx, out_dir, len(batches), resume=resume, overwrite=overwrite, force=force)
        if decided is None:  # decided now, once; runs started before decisions were recorded record it now
            writer.manifest["model"]["fast_forward"] = ctx.fast_forward
        return _run_parts(ctx, writer, out_dir, batches, progress, stop_after_parts)


def _run_parts(ctx: RunContext, writer: RunWriter, out_dir: Path, batches, progress, stop_after_parts) -> Path:
    done = committed_parts(out_dir)
    done_samples = sum(len(batches[p]) for p in done if p < len(batches))
    todo = [p for p in range(len(batches)) if p not in done]
    bar = tqdm(total=len(ctx.dataset), initial=done_samples, unit="img", disable=not progress,
               file=sys.stderr, dynamic_ncols=True, desc="explaining")
    t0, passes0, fast0, n_new = time.perf_counter(), ctx.model.passes, ctx.fast_passes, 0
    part = None
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
        part = None
        t_sanity = time.perf_counter()
        sanity = sanity_checks(ctx)
        if sanity is not None:
            writer.manifest["sanity"] = sanity
            ctx.stats["analysis_s"]["sanity"] = time.perf_counter() - t_sanity
        if not final_progress(writer, out_dir, batches):
            raise SummaryError(f"{out_dir}: some parts vanished while the run was written; finish with --resume")
    except KeyboardInterrupt:
        fail(writer, "interrupted", INTERRUPTED)
        raise
    except Exception as e:
        err = as_xai_error(e, f"part {part}" if part is not None else str(out_dir))
        fail(writer, "failed", str(err))
        if err is e:
            raise
        raise err from e
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    writer.finish("complete", timing={
        "seconds": round(wall, 3),
        # this process's setup before the first part: model loading, the fast-path decision
        "setup_s": {k: round(v, 3) for k, v in ctx.stats.get("setup_s", {}).items()},
        "images_per_s": round(n_new / wall, 3) if wall > 0 and n_new else None,
        "model_passes": ctx.model.passes - passes0,
        "fast_forward_passes": ctx.fast_passes - fast0,
        "explain_s": {k: round(v, 3) for k, v in ctx.stats["explain_s"].items()},
        "metric_s": {k: round(v, 3) for k, v in ctx.stats["metric_s"].items()},
        "analysis_s": {k: round(v, 3) for k, v in ctx.stats["analysis_s"].items()},
    })
    return out_dir
