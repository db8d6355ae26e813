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
    model_nan: dict = {}
    for (e, m), g in scores.groupby(["explainer", "metric"], sort=True):
        means.setdefault(e, {})[m] = _finite_mean(g["score"])
        raw_means.setdefault(e, {})[m] = _finite_mean(g["raw"])
        skipped.setdefault(e, {})[m] = int((~np.isfinite(g["raw"].to_numpy(dtype=float))).sum())
        if int(g["nan_reason"].notna().sum()):  # n/a because the model misbehaved, not "does not apply"
            model_nan.setdefault(e, {})[m] = int(g["nan_reason"].notna().sum())
    reasons = scores["nan_reason"].dropna()
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
        "model_nan": model_nan,  # of not_applicable: scores the model's non-finite outputs spoiled
        "model_nan_example": str(reasons.iloc[0]) if len(reasons) else None,
        "backends": part_backends(r),
        "progress": man.get("progress"),
        "timing": man.get("timing"),
    }


def part_backends(r: RunReader) -> dict[str, int]:
    """{backend of the gradient-free passes: committed parts it computed} from the parts'
    commit records ("unrecorded" for parts written before they said)."""
    from .summary.integrity import commit_record

    out: dict[str, int] = {}
    for p in r.parts():
        b = ((commit_record(r.run_dir, p) or {}).get("backend") or {}).get("forward", "unrecorded")
        out[str(b)] = out.get(str(b), 0) + 1
    return out
