"""The runs under a log directory: listing, status, and safe resolution of a run name.

A run is named by its path relative to the logdir (``"demo"``, ``"exp1/resnet"``, ``"."`` for
the logdir itself). That name is what the URL carries, so :func:`resolve_run` only accepts
names of runs found under the logdir: a query string can never make the app open a file
outside it.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..axioms import run_warnings
from ..errors import SummaryError, XaiError
from ..summary.format import MANIFEST, TABLES
from ..summary.lock import writer_gone
from ..summary.reader import find_runs, read_manifest

DEFAULT_LOGDIR = "summaries"
# A "running" run whose manifest has not been touched for this long has probably lost its
# process (the writer flushes at least once per committed part); one whose lock names a process
# of this host that is gone has lost it for sure.
STALE_AFTER_S = 15 * 60
# What a running run whose samples are all explained does before it is complete.
PHASES = {"sanity": "sanity check (model randomisation), every sample explained"}


def parse_logdir(argv: list[str] | None = None, env: dict | None = None) -> Path:
    """``--logdir`` from the arguments after ``streamlit run app.py --``, else ``XAI_LOGDIR``,
    else ``summaries``. Unknown arguments are ignored (pytest's own, under AppTest)."""
    env = os.environ if env is None else env
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("--logdir", default=None)
    args, _ = p.parse_known_args(argv if argv is not None else [])
    return Path(args.logdir or env.get("XAI_LOGDIR") or DEFAULT_LOGDIR)


@dataclass(frozen=True)
class RunInfo:
    """One row of the runs page. ``status`` is running / complete / failed / interrupted / unreadable;
    ``error`` says why a run failed or cannot be read."""

    name: str
    path: Path
    status: str
    error: str | None = None
    done_samples: int | None = None
    total_samples: int | None = None
    model: str = ""
    dataset: str = ""
    explainers: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    updated: str | None = None
    stale: bool = False
    warnings: tuple[str, ...] = ()  # axiom warnings of a complete run (xai_core/axioms.py)
    phase: str | None = None  # what a running run does after its samples: "sanity" (the check)
    plan: str = ""  # planned against actual passes and seconds (xai_core/plan.py; "" without a plan)

    @property
    def readable(self) -> bool:
        return self.status != "unreadable"

    @property
    def progress(self) -> float | None:
        if not self.total_samples or self.done_samples is None:
            return None
        return min(1.0, self.done_samples / self.total_samples)

    @property
    def status_text(self) -> str:
        if self.status == "running":
            pct = f" {self.progress:.0%}" if self.progress is not None else ""
            if self.phase in PHASES:
                pct = f": {PHASES[self.phase]}"
            stale = " — its process is gone or has not updated it for long (finish it with --resume)" if self.stale else ""
            return f"running{pct} ({self.done_samples}/{self.total_samples} samples){stale}"
        if self.status in ("failed", "interrupted", "unreadable") and self.error:
            return f"{self.status}: {self.error}"
        return self.status


def run_name(logdir: Path, run_dir: Path) -> str:
    rel = run_dir.resolve().relative_to(logdir.resolve())
    return rel.as_posix() if rel.parts else "."


def _model_text(model: dict) -> str:
    if not isinstance(model, dict):
        return ""
    src = model.get("factory") or model.get("torchscript") or model.get("onnx") or model.get("url") or ""
    w = model.get("weights")
    return f"{src} ({Path(w).name})" if w else str(src)


def _dataset_text(ds: dict) -> str:
    if not isinstance(ds, dict):
        return ""
    path = ds.get("path")
    return f"{ds.get('kind', '')}: {Path(path).name if path else ''}".strip(": ")


def _is_stale(updated: str | None, now: datetime) -> bool:
    try:
        t = datetime.fromisoformat(updated) if updated else None
    except ValueError:
        return False
    if t is None:
        return False
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return (now - t).total_seconds() > STALE_AFTER_S


def run_info(logdir: Path, run_dir: Path, *, now: datetime | None = None) -> RunInfo:
    """The runs-page row of one run; never raises for a bad run (status "unreadable")."""
    name = run_name(logdir, run_dir)
    try:
        ensure_inside(logdir, run_dir / MANIFEST)
        for sub in _run_folders(run_dir):  # a run whose data lives outside the logdir is never read
            ensure_inside(logdir, sub)
        m = read_manifest(run_dir)
    except XaiError as e:
        return RunInfo(name, run_dir, "unreadable", error=str(e))
    except OSError as e:
        return RunInfo(name, run_dir, "unreadable", error=f"{run_dir / MANIFEST}: {e.strerror or e}")
    prog = m.get("progress") if isinstance(m.get("progress"), dict) else {}
    status = str(m.get("status", "unknown"))
    updated = m.get("updated")
    return RunInfo(
        name=name, path=run_dir, status=status, error=m.get("error"),
        done_samples=prog.get("done_samples"), total_samples=prog.get("total_samples"),
        model=_model_text(m.get("model", {})), dataset=_dataset_text(m.get("dataset", {})),
        explainers=tuple(str(e.get("name")) for e in m.get("explainers", []) if isinstance(e, dict)),
        metrics=tuple(str(x.get("name")) for x in m.get("metrics", []) if isinstance(x, dict)),
        updated=updated,
        stale=status == "running" and (_is_stale(updated, now or datetime.now(timezone.utc)) or writer_gone(run_dir)),
        warnings=tuple(w for ws in run_warnings(m).values() for w in ws),
        phase=prog.get("phase") if isinstance(prog.get("phase"), str) else None,
        plan=_plan_text(m),
    )


def _plan_text(m: dict) -> str:
    from ..inspect import planned_vs_actual

    try:
        pva = planned_vs_actual(m)
    except (TypeError, ValueError, KeyError):  # a hand-edited plan: not worth failing the list for
        return ""
    return pva["text"] if pva else ""


def _run_folders(run_dir: Path) -> list[Path]:
    """The folders a run's data lives in (``tables``, ``arrays``, each table's), where present."""
    subs = [run_dir / "tables", run_dir / "arrays", *(run_dir / "tables" / t for t in TABLES)]
    return [p for p in subs if os.path.lexists(p)]


def list_runs(logdir: str | Path) -> list[RunInfo]:
    """Every run under ``logdir`` (recursively), most recently updated first; unreadable runs
    are listed with the reason rather than hidden."""
    logdir = Path(logdir)
    infos = [run_info(logdir, d) for d in find_runs(logdir)]
    return sorted(infos, key=lambda r: (r.updated or "", r.name), reverse=True)


def runs_frame(runs: list[RunInfo]) -> pd.DataFrame:
    """The runs table as displayed: one row per run."""
    return pd.DataFrame({
        "run": [r.name for r in runs],
        "status": [r.status_text for r in runs],
        "progress": [r.progress for r in runs],
        "samples": [r.done_samples for r in runs],
        "model": [r.model for r in runs],
        "dataset": [r.dataset for r in runs],
        "explainers": [", ".join(r.explainers) for r in runs],
        "metrics": [", ".join(r.metrics) for r in runs],
        "updated": [r.updated for r in runs],
    })


def ensure_inside(root: Path, path: Path) -> Path:
    """``path`` resolved, or SummaryError when it (or a symlink on the way) leaves ``root``."""
    real = path.resolve()
    if not real.is_relative_to(root.resolve()):
        raise SummaryError(f"{path}: resolves to {real}, outside the log directory {root}; refusing to read it")
    return real


def resolve_run(logdir: str | Path, name: str | None, runs: list[RunInfo] | None = None) -> RunInfo:
    """The run called ``name`` under ``logdir``.

    Only names of runs actually found under the logdir are accepted, so ``../x``, absolute
    paths or symlinks leaving the logdir never reach the filesystem.
    """
    logdir = Path(logdir)
    if not name:
        raise SummaryError("no run selected; choose one on the Runs page")
    runs = list_runs(logdir) if runs is None else runs
    for r in runs:
        if r.name == name:
            ensure_inside(logdir, r.path)
            return r
    raise SummaryError(f"no run named {name!r} under {logdir}; expected one of {[r.name for r in runs][:8]}")
