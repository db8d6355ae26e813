"""The step axis of a run (format 3, FORMAT.md "Steps"): a run may hold several *steps* — a
training step or epoch, an integer the user chooses — each the explanations of the same probe
images by the model as it was at that step.

A step is a run directory of its own (manifest, tables, arrays: everything the reader, the
integrity checks and the dashboard already read) at ``<run>/steps/step-NNNNNNNNN/``. It is
written under a temporary name, renamed into place, and *committed* by the run's manifest
listing it (``steps``: one entry per step with the checksum of the step's own manifest). A
step directory the manifest does not list is the remains of a crash and is ignored, then
removed by the next writer; so a crash while a step is written loses at most that step.

A run without ``steps`` (every run of format ≤ 2, and a runner's run) is one step held at the
run's root: number ``manifest["step"]`` when recorded, else 0.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..errors import SummaryError
from .format import MANIFEST
from .manifest import read_manifest

STEPS_DIR = "steps"
ROOT = "."


def step_name(step: int) -> str:
    return f"step-{int(step):09d}"


def is_stepped(manifest: dict) -> bool:
    """Whether the run keeps its steps in step directories (a run written step by step)."""
    return isinstance(manifest.get("steps"), list)


def step_entries(manifest: dict) -> list[dict]:
    """``[{step, dir, …}]`` in step order; a run without ``steps`` is one step at its root."""
    if is_stepped(manifest):
        return sorted(manifest["steps"], key=lambda e: e["step"])
    step = manifest.get("step")
    return [{"step": int(step) if isinstance(step, int) else 0, "dir": ROOT}]


def step_numbers(manifest: dict) -> list[int]:
    return [int(e["step"]) for e in step_entries(manifest)]


def step_path(run_dir: str | Path, step: int | None = None, manifest: dict | None = None) -> Path:
    """The directory holding ``step``'s tables and arrays (None: the newest step); the run
    directory itself for a run of one step at its root (and for a run of steps that has none
    committed yet: it reads as empty). SummaryError for a step not in the run."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir) if manifest is None else manifest
    entries = step_entries(manifest)
    if not entries:  # a run written step by step, before its first step commits: nothing to read yet
        if step is not None:
            raise SummaryError(f"{run_dir}: no step {step}; the run has no committed step yet")
        return run_dir
    if step is None:
        entry = entries[-1]
    else:
        entry = next((e for e in entries if int(e["step"]) == int(step)), None)
        if entry is None:
            raise SummaryError(f"{run_dir}: no step {step}; the run holds steps {_listed(entries)}")
    return run_dir if entry["dir"] == ROOT else run_dir / entry["dir"]


def _listed(entries: list[dict]) -> str:
    nums = [int(e["step"]) for e in entries]
    return ", ".join(map(str, nums)) if len(nums) <= 12 else f"{nums[0]} … {nums[-1]} ({len(nums)} steps)"


def manifest_checksum(step_dir: Path) -> str | None:
    """The ``checksum`` a step's manifest was sealed with (what the run's entry records)."""
    try:
        return json.loads((step_dir / MANIFEST).read_bytes()).get("checksum")
    except (OSError, ValueError, AttributeError):
        return None


def check_step(run_dir: Path, entry: dict) -> Path:
    """The committed step's directory after checking it is there and its manifest is the one
    committed (the checksum the run's entry recorded); SummaryError naming the step otherwise."""
    path = run_dir if entry["dir"] == ROOT else run_dir / entry["dir"]
    if entry["dir"] == ROOT:
        return path
    if not (path / MANIFEST).is_file():
        raise SummaryError(f"{path}: step {entry['step']} is listed in the run's manifest but its directory is "
                           "missing; the run directory was damaged (log that step again)")
    want = entry.get("checksum")
    if want is not None and manifest_checksum(path) != want:
        raise SummaryError(f"{path}: step {entry['step']}'s manifest is not the one committed (checksum differs); "
                           "the run directory was damaged (log that step again)")
    return path


def new_step_dir(run_dir: Path, step: int) -> Path:
    """A fresh temporary directory to write ``step`` into (renamed by :func:`place_step`)."""
    tmp = run_dir / STEPS_DIR / f".{step_name(step)}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    return tmp


def place_step(run_dir: Path, step: int, tmp: Path) -> Path:
    """Rename a fully written step directory into place (an uncommitted leftover of a crash
    at the same step is replaced); the caller then commits it in the run's manifest."""
    final = run_dir / STEPS_DIR / step_name(step)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def step_entry(run_dir: Path, step: int, path: Path, **info) -> dict:
    return {"step": int(step), "dir": path.relative_to(run_dir).as_posix(),
            "checksum": manifest_checksum(path), **info}


def remove_uncommitted(run_dir: str | Path, manifest: dict) -> list[str]:
    """Delete step directories the manifest does not list (a crash while they were written)
    and temporary ones; only while holding the run lock. Returns their names."""
    d = Path(run_dir) / STEPS_DIR
    if not d.is_dir():
        return []
    listed = {e["dir"] for e in step_entries(manifest)}
    gone = []
    for p in sorted(d.iterdir()):
        if p.is_dir() and f"{STEPS_DIR}/{p.name}" not in listed:
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p.name)
    return gone

