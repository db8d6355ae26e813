"""A one-object overview of a run (``xai-core inspect``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .axioms import run_warnings, summarise
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
        bad = int(g["nan_reason"].notna().sum())
        if bad:  # n/a because the model misbehaved, not "does not apply"
            model_nan.setdefault(e, {})[m] = bad
    reasons = scores["nan_reason"].dropna()
    man = r.manifest
    diagnostics = man.get("diagnostics") if isinstance(man.get("diagnostics"), dict) else summarise(r.details())
    resolved = {e["name"]: e["resolved"] for e in r.explainers if isinstance(e, dict) and e.get("resolved")}
    return {
        "path": str(Path(run_dir)),
        "format_version": man["format_version"],
        "steps": r.steps,  # the run's steps; the other figures are of the newest (FORMAT.md "Steps")
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
        # Axiom figures per explainer (median, worst, share of maps beyond the threshold) and
        # the warnings they raise (xai_core/axioms.py); what each explainer resolved.
        "diagnostics": diagnostics,
        "warnings": [w for ws in run_warnings({**man, "diagnostics": diagnostics}).values() for w in ws],
        "resolved": resolved,
        "resolved_text": {e: text for e, v in resolved.items() if (text := resolved_text(v))},
        "device": _device_summary(man.get("model") or {}),
        "named_model": named_model_text((man.get("config") or {}).get("model") or {}),
        "plan": planned_vs_actual(man),
    }


def named_model_text(model: dict) -> str | None:
    """One line of a model given by name and the preprocessing chosen from it ("timm vit_small…
    (weights w.safetensors): 224×224, mean …, from timm …: resolve_data_config"); None otherwise."""
    if not (model.get("timm") or model.get("hf")):
        return None
    pre = model.get("preprocessing") or {}
    what = f"timm {model['timm']}" if model.get("timm") else f"transformers {model['hf']}"
    if model.get("weights"):
        what += f" (weights {Path(model['weights']).name})"
    size = model.get("input_size") or []
    extra = ", ".join(f"{k} {pre[k]}" for k in ("interpolation", "crop_pct", "crop_mode") if pre.get(k))
    return (f"{what}: {size[0]}×{size[1]} px, mean {list(model.get('mean') or [])}, std {list(model.get('std') or [])}"
            + (f", {extra}" if extra else "") + f"; chosen from {pre.get('source', 'the configuration')}"
            + (f" ({', '.join(pre['applied'])})" if pre.get("applied") else " (all set in the configuration)"))


def planned_vs_actual(manifest: dict) -> dict | None:
    """The run's plan (:mod:`xai_core.plan`) against what it paid: ``passes`` and ``seconds``
    as [planned, actual] (actual None until the run finished), ``seconds_range`` and ``text``,
    one line; None for runs without a plan. Actual passes: ``timing.model_passes`` plus the
    sanity check's ``forward_passes`` (its randomised copies), as the plan counts them."""
    plan, timing = manifest.get("plan"), manifest.get("timing") or {}
    if not isinstance(plan, dict) or "passes" not in plan:
        return None
    passes = None
    if "model_passes" in timing:
        passes = int(timing["model_passes"]) + sum(int((s or {}).get("forward_passes", 0))
                                                   for s in (manifest.get("sanity") or {}).values()
                                                   if isinstance(s, dict))
    seconds = timing.get("seconds")
    lo, hi = plan.get("seconds_range") or (None, None)
    text = (f"plan: {plan['passes']:,} passes, {plan.get('seconds', 0):.1f} s ({lo:.1f}–{hi:.1f} s)"
            + (f"; actual: {passes:,} passes, {seconds:.1f} s" if passes is not None and seconds is not None
               else "; not finished"))
    return {"passes": [plan["passes"], passes], "seconds": [plan.get("seconds"), seconds],
            "seconds_range": [lo, hi], "text": text}


def resolved_text(resolved: dict | None) -> str:
    """One line of what an explainer resolved on the model: "layer blocks.1 (1 + 4×4 tokens)",
    "attention of 3 layers (blocks.0.attn.attn_drop, …), 1 + 4×4 tokens"; "" when nothing."""
    if not isinstance(resolved, dict):
        return ""
    grid = resolved.get("grid")
    grid_text = f"{grid[0]}×{grid[1]}" if isinstance(grid, (list, tuple)) and len(grid) == 2 else ""
    prefix = resolved.get("prefix_tokens") or 0
    if resolved.get("layer"):
        layout = resolved.get("layout", "nchw")
        what = (f"{prefix} + {grid_text} tokens" if prefix else f"{grid_text} tokens") if str(layout).startswith("tokens") \
            else f"{grid_text} {'channels-last ' if layout == 'nhwc' else ''}map"
        return f"layer {resolved['layer']} ({what})" if grid_text else f"layer {resolved['layer']}"
    if resolved.get("modules"):
        mods = list(resolved["modules"])
        shown = ", ".join(mods[:2]) + (", …" if len(mods) > 2 else "")
        tokens = f"{prefix} + {grid_text}" if prefix else grid_text
        rows = (resolved.get("readout") or {}).get("rows") or f"the {resolved.get('token')} token"
        return f"attention of {len(mods)} layers ({shown}), {tokens} tokens, read at {rows}"
    if resolved.get("unsupported"):
        return "allowed although its rules do not cover " + ", ".join(resolved["unsupported"])
    return ""


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


def part_backends(r: RunReader) -> dict[str, int]:
    """{backend of the gradient-free passes: committed parts it computed} from the parts'
    commit records ("unrecorded" for parts written before they said)."""
    from .summary.integrity import commit_record

    out: dict[str, int] = {}
    for p in r.parts():
        b = ((commit_record(r.run_dir, p) or {}).get("backend") or {}).get("forward", "unrecorded")
        out[str(b)] = out.get(str(b), 0) + 1
    return out
