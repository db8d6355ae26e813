"""Orchestrates a run: creates or resumes the summary, computes the missing parts in order
(reading ahead and writing behind the model: :mod:`.pipeline`) with progress for every phase
(:mod:`.progress`), and records the final status and where the time went."""

from __future__ import annotations

import errno
import time
from contextlib import contextmanager
from pathlib import Path

from . import __version__
from .axioms import run_diagnostics
from .config import RunConfig
from .engine import RunContext, compute_part, load_part, part_indices, sanity_checks
from .errors import ConfigError, SummaryError, XaiError
from .pipeline import PartPipeline
from .plan import make_plan, plan_lines
from .fitting import fit_budget, make_sampler
from .stopping import RankingWatch, part_order
from .progress import RunProgress, format_seconds, time_summary
from .summary.lock import RunLock
from .summary.reader import read_manifest
from .summary.writer import RunWriter, committed_parts, make_run_dir, remove_temporaries, write_part
from .threads import cpu_threads

INTERRUPTED = "interrupted by the user; finish with --resume"


def build_manifest(ctx: RunContext, n_parts: int) -> dict:
    cfg = ctx.config
    return {
        "xaiboard_version": __version__,
        "config": cfg.to_dict(),
        "model": {**ctx.model_identity(), "activation": cfg.model.activation,
                  "input_size": list(cfg.model.input_size), "fast_forward": ctx.fast_forward,
                  # detected when model.channels is unset; none in a Dask driver (workers load the model)
                  "channels": getattr(ctx.model, "channels", None),
                  # which part of a dict/tuple output (or which of several outputs) is the logits, and why
                  "output": getattr(ctx.model, "output_choice", None),
                  **ctx.model_record()},  # device, precision, batch sizes (issue 15)
        "dataset": ctx.dataset.identity(),
        "classes": ctx.classes,
        # `signed` is the instance's (Grad-CAM with relu: false is signed); RunWriter.finish
        # adds what the maps measured (has_negative) — FORMAT.md.
        # `resolved`: what the instance found on the model (a CAM's layer and grid, the attention
        # modules, DeepLIFT's unsupported operations); none in a Dask driver (no model loaded).
        "explainers": [{**type(e).metadata(), "type": e.name, "name": e.instance_name,
                        "signed": e.is_signed, "signed_declared": e.is_signed,
                        "params": _plain(e.params), "resolved": e.resolved} for e in ctx.explainers],
        "metrics": [{**type(m).metadata(), "type": m.name, "name": m.instance_name,
                     "params": _plain(m.params)} for m in ctx.metrics],
        "progress": {"total_samples": len(ctx.dataset), "done_samples": 0,
                     "total_parts": n_parts, "done_parts": 0, "batch_size": cfg.batch_size},
    }


def _plain(params) -> dict:
    import dataclasses

    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(params).items()}


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
    then_m, now_m = manifest.get("model") or {}, ctx.model_identity()
    changed = [f"dataset {k}" for k in ("n_items", "sha256") if then_ds.get(k) != now_ds.get(k)]
    changed += [f"model {k}" for k in ("weights_sha256", "torchscript_sha256", "onnx_sha256", "module_sha256")
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
        progress: bool = True, stop_after_parts: int | None = None, force: bool = False,
        pipelined: bool = True, network=None, dataset=None, plan_only: bool = False) -> Path | dict:
    """Run (or finish) ``config`` into ``out_dir``; returns the run directory.

    ``stop_after_parts`` ends the process early (tests use it to simulate an interruption);
    ``force`` resumes even when the dataset file or model weights changed; ``pipelined``
    (default) reads the next part and writes the last one in background threads while the
    model works (:mod:`.pipeline`), False does one step after the other (``--no-pipeline``).
    torch and ONNX Runtime use ``config.threads`` intra-op threads during the run
    (:mod:`.threads`). ``network`` and ``dataset`` are in-memory objects (``xai_core.explain``,
    :meth:`RunContext.build`). ``plan_only``: load the model, probe the first part, print the
    run's plan (:mod:`.plan`) and return it; nothing is written and ``out_dir`` is not touched.
    """
    out_dir = Path(out_dir)
    report = RunProgress(progress)
    if plan_only:
        with cpu_threads(config.threads):
            ctx = RunContext.build(config, network=network, dataset=dataset, progress=report)
            batches = part_indices(len(ctx.dataset), config.batch_size)
            ctx.sample = make_sampler(ctx, batches)
            plan = make_plan(ctx, batches) if config.budget is None else fit_budget(ctx, batches, config.budget)[0]
        if progress:  # the answer of --plan: on stdout
            print("\n".join(plan_lines(plan)), flush=True)
        return plan
    with cpu_threads(config.threads) as threads, owned(out_dir):  # the lock before the model's setup
        decided = recorded_fast_forward(out_dir) if resume else None  # a resumed run keeps its backend
        ctx = RunContext.build(config, network=network, dataset=dataset, progress=report, fast_forward=decided)
        batches = part_indices(len(ctx.dataset), config.batch_size)
        budget = None
        if config.budget is not None and not resume:  # cut to fit, before the manifest records the config
            ctx.sample = make_sampler(ctx, batches)
            budget = fit_budget(ctx, batches, config.budget)[1]
            for cut in budget["cuts"]:
                report.line(f"budget {config.budget}: cut {cut}")
        writer = open_writer(ctx, out_dir, len(batches), resume=resume, overwrite=overwrite, force=force)
        # decided now, once (runs started before decisions were recorded record it now); the
        # device and batch record are this process's
        writer.manifest["model"].update(**ctx.model_record())
        if decided is None:
            writer.manifest["model"]["fast_forward"] = ctx.fast_forward
        if budget is not None:
            writer.manifest["budget"] = budget
        else:
            ctx.sample = make_sampler(ctx, batches, writer.manifest.get("sample"))  # a resumed run keeps its pairs
        if ctx.sample is not None:
            writer.manifest["sample"] = ctx.sample.record()
        return _run_parts(ctx, writer, out_dir, batches, report, stop_after_parts,
                          pipelined=pipelined, threads=threads,
                          settle=None if resume else config.stop_when)  # a resume goes to the end


def _run_parts(ctx: RunContext, writer: RunWriter, out_dir: Path, batches, report: RunProgress, stop_after_parts,
               *, pipelined: bool = True, threads: int | None = None, settle=None) -> Path:
    setup_s = time.perf_counter() - report.started
    done = committed_parts(out_dir)
    todo = [p for p in range(len(batches)) if p not in done]
    watch = None
    if settle is not None:  # stop when the ranking is settled: parts in a seeded random order (stopping.py)
        todo, watch = part_order(todo, ctx.config.seed), RankingWatch(settle, ctx.config.seed)
    count = {"samples": sum(len(batches[p]) for p in done if p < len(batches)), "parts": len(batches) - len(todo)}
    t_plan = time.perf_counter()
    try:  # before the first pass it predicts; a model that fails on the probe fails at its part instead
        plan = make_plan(ctx, batches, todo)
        lines = plan_lines(plan)
    except Exception as e:  # noqa: BLE001 - the plan is informative, the part reports the error
        plan = {"error": str(as_xai_error(e, "plan"))}
        lines = [f"plan: not made ({plan['error']})"]
    writer.manifest["plan"] = plan
    ctx.stats.setdefault("setup_s", {})["plan"] = time.perf_counter() - t_plan
    for line in lines:
        report.line(line)
    report.line(f"setup: {len(ctx.dataset)} items in {len(batches)} parts ({len(todo)} to compute), "
                f"{threads} CPU thread{'s' if threads != 1 else ''}{', pipelined' if pipelined else ''}; "
                f"{format_seconds(setup_s)}")
    bar = report.bar(total=len(ctx.dataset), initial=count["samples"], unit="img", desc="explaining")
    t0, passes0, fast0, n_new = time.perf_counter(), ctx.model.passes, ctx.fast_passes, 0

    def committed(part: int) -> None:  # the writer thread, after each commit, in part order
        count["samples"] += len(batches[part])
        count["parts"] += 1
        bar.update(len(batches[part]))
        writer.progress(count["samples"], count["parts"])

    pipe = PartPipeline(todo, lambda p: load_part(ctx, batches[p]), lambda p, result: write_part(out_dir, p, **result),
                        on_commit=committed, background=pipelined)
    part, stopped, settled = None, False, None
    try:
        with pipe:
            for k, (part, batch) in enumerate(pipe.batches()):
                if stop_after_parts is not None and k >= stop_after_parts:
                    stopped = True
                    break
                result = compute_part(ctx, part, batches[part], batch=batch)
                pipe.commit(part, result)
                n_new += len(batches[part])
                if watch is not None and (settled := settled_after(watch, result, k, len(todo), report)):
                    break
        part = None
        bar.close()
        if stopped or settled:
            writer.progress(count["samples"], count["parts"], force=True)
            if settled:
                writer.finish("interrupted", error=f"stopped early: {settled['reason']}; finish with --resume",
                              stopped_early=settled)
            return out_dir
        parts_s = time.perf_counter() - t0
        t_sanity = time.perf_counter()
        if ctx.config.sanity.enabled:  # every sample is done: the Runs page names what runs now
            writer.progress(count["samples"], count["parts"], force=True, phase="sanity")
        sanity = sanity_checks(ctx, report)
        writer.manifest["progress"].pop("phase", None)
        sanity_s = time.perf_counter() - t_sanity
        if sanity is not None:
            writer.manifest["sanity"] = sanity
            ctx.stats["analysis_s"]["sanity"] = sanity_s
        t_finish = time.perf_counter()
        report.line(f"finishing: recounting the {len(batches)} committed parts and the measured signs of their maps…")
        if not final_progress(writer, out_dir, batches):
            raise SummaryError(f"{out_dir}: some parts vanished while the run was written; finish with --resume")
    except KeyboardInterrupt:
        fail(writer, "interrupted", INTERRUPTED)
        raise
    except Exception as e:
        where = pipe.failed_part if pipe.failed_part is not None else part
        err = as_xai_error(e, f"part {where}" if where is not None else str(out_dir))
        fail(writer, "failed", str(err))
        if err is e:
            raise e
        raise err from e
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    writer.manifest["model"]["batches"] = ctx.model_record()["batches"]  # with the run's OOM back-offs
    timing = {
        "seconds": round(wall, 3),
        # this process's setup before the first part: model loading, the fast-path decision
        "setup_s": {k: round(v, 3) for k, v in ctx.stats.get("setup_s", {}).items()},
        "images_per_s": round(n_new / wall, 3) if wall > 0 and n_new else None,
        "model_passes": ctx.model.passes - passes0,
        "fast_forward_passes": ctx.fast_passes - fast0,
        "explain_s": {k: round(v, 3) for k, v in ctx.stats["explain_s"].items()},
        "metric_s": {k: round(v, 3) for k, v in ctx.stats["metric_s"].items()},
        "analysis_s": {k: round(v, 3) for k, v in ctx.stats["analysis_s"].items()},
        "threads": threads,
        "pipelined": pipelined,
        **where_the_time_went(ctx.stats, pipe.stats, pipelined, setup_s=setup_s, parts_s=parts_s, sanity_s=sanity_s),
    }
    writer.finish("complete", diagnostics=run_diagnostics(out_dir), timing=timing)
    report.line(time_summary(timing, finishing=time.perf_counter() - t_finish))
    return out_dir


def settled_after(watch, result: dict, k: int, n_todo: int, report: RunProgress) -> dict | None:
    """After the k-th part computed: print the ranking's stability; the manifest's
    ``stopped_early`` when it is settled and parts are left (stopping.py), else None."""
    watch.add(result["scores"])
    p, top = watch.stability()
    if p is None:
        return None
    report.line(f"part {k + 1} of {n_todo}: ranking stability {p:.2f} (top: {', '.join(top)})")
    spec = watch.spec
    if k + 1 < spec.min_parts or k + 1 >= n_todo or p < spec.ranking_stable:
        return None
    return {"reason": f"ranking stability {p:.2f} ≥ {spec.ranking_stable:g} after {k + 1} of {n_todo} parts",
            "stability": round(p, 4), "top": top, "parts": k + 1, "of_parts": n_todo}


def where_the_time_went(stats: dict, io: dict, pipelined: bool, *, setup_s: float, parts_s: float,
                        sanity_s: float) -> dict:
    """``phases_s`` (the calling thread's wall time by phase: they add up to the run's) and
    ``background_s`` (the pipeline threads' reading and writing, which overlap the model's
    work) for the manifest's ``timing``; ``stats``: the context's per-explainer, -metric and
    -analysis seconds, ``io``: :attr:`PartPipeline.stats`."""
    analyses = {k: v for k, v in stats["analysis_s"].items() if k != "sanity"}
    phases = {"setup": setup_s, "explain": sum(stats["explain_s"].values()),
              "metrics": sum(stats["metric_s"].values()), "analyses": sum(analyses.values())}
    if pipelined:
        phases["waiting"] = io["read_wait"] + io["write_wait"]
        background = {"reading": io["read"], "writing": io["write"]}
    else:
        phases.update(reading=io["read"], writing=io["write"])
        background = {}
    # predictions, label selection, object masks, bookkeeping: the rest of the parts' time
    phases["other"] = max(0.0, parts_s - sum(v for k, v in phases.items() if k != "setup"))
    phases["sanity"] = sanity_s
    return {"phases_s": {k: round(v, 3) for k, v in phases.items()},
            "background_s": {k: round(v, 3) for k, v in background.items()}}
