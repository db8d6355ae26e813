"""A one-object overview of a run (``xai-core inspect``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .labels import TAGS
from .summary.reader import RunReader


def _finite_mean(values) -> float | None:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None


def inspect_run(run_dir: str | Path) -> dict:
    """format_version, status, counts, tags, and per explainer × metric means of the [0, 1]
    score (``scores``, higher = better) and of the raw value (``raw_scores``)."""
    r = RunReader(run_dir)
    samples, labels, scores = r.samples(), r.labels(), r.scores()
    tags = {t: int((labels["tag"] == t).sum()) for t in TAGS}
    means: dict = {}
    raw_means: dict = {}
    skipped: dict = {}
    for (e, m), g in scores.groupby(["explainer", "metric"], sort=True):
        means.setdefault(e, {})[m] = _finite_mean(g["score"])
        raw_means.setdefault(e, {})[m] = _finite_mean(g["raw"])
        skipped.setdefault(e, {})[m] = int((~np.isfinite(g["raw"].to_numpy(dtype=float))).sum())
    man = r.manifest
    return {
        "path": str(Path(run_dir)),
        "format_version": man["format_version"],
        "status": r.status,
        "error": man.get("error"),
        "n_samples": int(len(samples)),
        "n_explained": int(len(labels)),
        "tags": tags,
        "classes": r.classes,
        "explainers": [e["name"] for e in r.explainers],
        "metrics": [m["name"] for m in r.metrics],
        "directions": {m["name"]: ("higher" if m["higher_is_better"] else "lower") for m in r.metrics},
        "scores": means,
        "raw_scores": raw_means,
        "not_applicable": skipped,
        "progress": man.get("progress"),
        "timing": man.get("timing"),
        "device": _device_summary(man.get("model") or {}),
    }


def _device_summary(model: dict) -> dict | None:
    """Where the run's passes ran (manifest ``model.device``, ``precision``, ``batches``); None
    for runs written before devices were recorded."""
    dev = model.get("device")
    if not isinstance(dev, dict):
        return None
    batches = model.get("batches") if isinstance(model.get("batches"), dict) else {}
    return {"requested": dev.get("requested"), "resolved": dev.get("resolved"), "name": dev.get("name"),
            "reason": dev.get("reason"), "precision": model.get("precision"),
            "explain_batch_size": batches.get("resolved"), "forward_backoffs": batches.get("forward_backoffs")}
