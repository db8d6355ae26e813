"""Committing one step of a :class:`~xai_core.monitor.Monitor` run (FORMAT.md "Steps").

Under the run lock: the run's manifest is created (or checked to be this monitor's), leftovers
of a crashed step are removed, the probe set is explained, the step is written as a run
directory of its own under a temporary name (part, then its manifest), renamed into
``steps/step-NNNNNNNNN`` and committed by rewriting the run's manifest with the step listed."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ConfigError
from .summary.lock import RunLock
from .summary.manifest import read_manifest
from .summary.steps import (is_stepped, new_step_dir, place_step, remove_uncommitted, step_entry, step_numbers)
from .summary.writer import RunWriter, make_run_dir, now_iso, remove_temporaries, write_part


def commit_step(mon, live, step: int) -> bool:
    """Explain ``mon``'s probe set with ``live`` (a LiveExplainer) and commit it as ``step``;
    False (nothing computed) when the run already holds it."""
    from .models.loading import model_identity
    from .runner import build_manifest

    out: Path = mon.out
    make_run_dir(out)
    with RunLock(out):
        root = _root_writer(out, live, mon)
        remove_uncommitted(out, root.manifest)
        remove_temporaries(out)
        if step in step_numbers(root.manifest):
            return False
        got, dataset = live.explain(mon.items)
        ctx = live.ctx
        ctx.model_ident = model_identity(ctx.config.model, live.network)  # the weights of this step
        manifest = {**build_manifest(ctx, 1), "step": step}
        tmp = new_step_dir(out, step)
        writer = RunWriter.create(tmp, manifest)
        write_part(tmp, 0, **got.result)
        n = len(got.sample_ids)
        writer.progress(n, 1)
        writer.finish("complete")
        final = place_step(out, step, tmp)
        entry = step_entry(out, step, final, samples=n, logged=now_iso(),
                           module_sha256=ctx.model_ident.get("module_sha256"))
        root.manifest["steps"] = sorted([*root.manifest["steps"], entry], key=lambda e: e["step"])
        root.manifest["progress"].update(total_samples=n, done_samples=n, total_parts=1, done_parts=1)
        root.finish("complete")  # the commit of the step (FORMAT.md)
    mon.last = got
    return True


def _plain(obj):
    return json.loads(json.dumps(obj, default=lambda o: list(o) if isinstance(o, (tuple, set)) else str(o)))


def _root_writer(out: Path, live, mon) -> RunWriter:
    from .runner import build_manifest

    if not (out / "manifest.json").is_file():
        manifest = {**build_manifest(live.ctx, 1), "steps": []}
        manifest["dataset"] = _dataset(mon)
        return RunWriter.create(out, manifest)
    m = read_manifest(out)
    if not is_stepped(m):
        raise ConfigError(f"{out} holds a run that is not a run of steps (not written by xai_core.Monitor); "
                          "choose another out=")
    then, now = _plain(m.get("config") or {}), _plain(live.config.to_dict())
    diff = sorted(k for k in set(then) | set(now) if then.get(k) != now.get(k))
    if (m.get("dataset") or {}).get("sha256") != _dataset(mon)["sha256"]:
        diff.append("probe images")
    if diff:
        raise ConfigError(f"{out} is a run of steps of another monitor (its {', '.join(diff)} differ); "
                          "log to another out=")
    return RunWriter(out, m)


def _dataset(mon) -> dict:
    from .data.memory import MemoryDataset

    return MemoryDataset(mon.classes, mon.items).identity()
