"""Axiom diagnostics: does an explainer obey its own method's axiom on the maps of a run?

An explanation that breaks its method's axiom is a bug until it is flagged or refused. The
explainers that have a checkable axiom record, per map, a figure in the run's ``details`` table
(FORMAT.md); this module defines, once, what each figure means and when it counts as a
violation, summarises a run (median and worst per explainer — the manifest's ``diagnostics``
at completion) and words the warnings that ``xai-core inspect``, the Runs page and the
comprehensive assessment show.

| key | explainers | violation when | why |
|---|---|---|---|
| ``completeness_error`` | integrated_gradients, deeplift | > 0.10 | Σ attributions must equal F(x) − F(x′) (IG Proposition 1; DeepLIFT summation-to-delta); the error is relative to abs(F(x) − F(x′)) |
| ``gradient_correlation`` | guided_backprop, deconvolution, guided_gradcam | > 0.90 | Pearson r of the map with the plain gradient: at r ≈ 1 the guided/deconvolution rule changed nothing |

Gradient × Input has no checkable axiom (it is exact only for linear models); the others
(sampling, perturbation, CAM methods) have none of this kind. Pure numpy/pandas: no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Axiom:
    """One checkable axiom: the ``key`` of its per-map figure, a short ``name``, the
    ``threshold`` above which a map violates it, how a figure is shown (``percent``) and
    what a violation means (``meaning``)."""

    key: str
    name: str
    threshold: float
    percent: bool
    meaning: str

    def fmt(self, v: float) -> str:
        if not math.isfinite(v):
            return "n/a"
        return f"{v:.0%}" if self.percent and v >= 1 else f"{v:.1%}" if self.percent else f"{v:.3f}"


AXIOMS: dict[str, Axiom] = {a.key: a for a in (
    Axiom("completeness_error", "completeness", 0.10, True,
          "Σ attributions ≠ F(x) − F(baseline) by more than 10 % of |F(x) − F(baseline)|"),
    Axiom("gradient_correlation", "rule applied", 0.90, False,
          "the map correlates with the plain gradient above r = 0.9: the rule changed (almost) nothing"),
)}


def summarise(details: pd.DataFrame) -> dict:
    """{explainer: {key: {median, worst, n, violations, share, threshold}}} of every axiom
    figure in a run's ``details`` table (columns explainer, key, value); non-finite values are
    not counted. ``worst`` is the largest figure (for both axioms, larger is worse)."""
    out: dict = {}
    if details is None or not len(details):
        return out
    d = details[details["key"].isin(list(AXIOMS))]
    for (e, key), g in d.groupby(["explainer", "key"], sort=True, observed=True):
        v = g["value"].to_numpy(dtype=np.float64)
        v = v[np.isfinite(v)]
        if not v.size:
            continue
        ax = AXIOMS[str(key)]
        bad = int((v > ax.threshold).sum())
        out.setdefault(str(e), {})[str(key)] = {
            "median": float(np.median(v)), "worst": float(v.max()), "n": int(v.size),
            "violations": bad, "share": bad / v.size, "threshold": ax.threshold}
    return out


def _reason(key: str, entry: dict | None) -> str:
    entry = entry or {}
    kind = entry.get("type") or entry.get("name") or ""
    resolved = entry.get("resolved") or {}
    if key == "completeness_error":
        uncovered = resolved.get("unsupported") if isinstance(resolved, dict) else None
        if uncovered:
            return f"rules unsupported for {', '.join(uncovered)}"
        if kind == "integrated_gradients":
            return "too few steps for this model: raise `steps`"
        return ""
    if key == "gradient_correlation":
        return "the map is (almost) the plain gradient: the rule hardly acted on this model"
    return ""


def warnings(summary: dict, explainers: list[dict] | None = None) -> dict[str, list[str]]:
    """{explainer: [one line per violated axiom]}, e.g. "deeplift: completeness violated on
    100 % of maps (median 540 %, worst 1144 %; threshold 10 %) — rules unsupported for
    layer_norm, softmax attention". Explainers without violations are absent."""
    meta = {str(e.get("name")): e for e in (explainers or []) if isinstance(e, dict)}
    out: dict[str, list[str]] = {}
    for e, entry in meta.items():  # what an explainer resolved by a doubtful inference (a token grid)
        note = entry.get("resolved") if isinstance(entry.get("resolved"), dict) else {}
        if isinstance(note.get("warning"), str):
            out.setdefault(e, []).append(f"{e}: {note['warning']}")
    for e, per_key in (summary or {}).items():
        if not isinstance(per_key, dict):
            continue
        for key, s in per_key.items():
            ax = AXIOMS.get(key)
            if ax is None or not isinstance(s, dict) or not s.get("violations"):
                continue
            if not all(isinstance(s.get(k), (int, float)) for k in ("share", "median", "worst")):
                continue  # a hand-edited or damaged manifest: nothing trustworthy to say
            why = _reason(key, meta.get(e))
            line = (f"{e}: {ax.name} violated on {s['share']:.0%} of maps (median {ax.fmt(s['median'])}, worst "
                    f"{ax.fmt(s['worst'])}; threshold {ax.fmt(ax.threshold)})" + (f" — {why}" if why else ""))
            out.setdefault(e, []).append(line)
    return out


def run_warnings(manifest: dict, details: pd.DataFrame | None = None) -> dict[str, list[str]]:
    """The warnings of a run: from the manifest's ``diagnostics`` (written at completion), or
    computed from its ``details`` table when given (a run still being written, or one written
    before diagnostics existed)."""
    summary = manifest.get("diagnostics") if isinstance(manifest.get("diagnostics"), dict) else None
    if summary is None and details is not None:
        summary = summarise(details)
    return warnings(summary or {}, manifest.get("explainers"))


def run_diagnostics(run_dir) -> dict:
    """:func:`summarise` of a run directory's committed details (the manifest's
    ``diagnostics``); {} when they cannot be read (a damaged part: the run finishes anyway)."""
    from .errors import XaiError
    from .summary.reader import RunReader

    try:
        return summarise(RunReader(run_dir).details())
    except (XaiError, OSError):
        return {}
