"""What the golden run computes, by value, and how two such records are compared (issue 22).

``collect`` runs the golden configurations part by part with the engine (no writer) and returns
``{column: value}``: float arrays for probabilities, float label columns, scores, maps and details;
exact values (ints, strings, JSON) for the discrete results. ``digests`` turns the same record
into the bit-for-bit digests of ``cpu_digests.json`` (unchanged since issue 16), so both tests
share one computation.

Tolerances, stated once. Another CPU model (or another torch ISA dispatch, oneDNN kernel, MKL code
path) sums the same float32 products in another order. The rounding of one float32 operation is
2⁻²⁴ ≈ 6e-8 relative; a reduction over K terms in another order moves its result by up to about
K·2⁻²⁴ of the terms' magnitude in the worst case and √K·2⁻²⁴ typically. The golden networks reduce
over at most ~600 terms per layer (3×3×64 convolutions, the linear heads) through ≤ 12 layers, and
every explainer reads the network's outputs or gradients a few hundred times, so:

- ``PROB_ATOL``: probabilities, float label columns, continuous scores and details move by at most
  1e-5 (absolute, or relative for values above 1: raw complexity or infidelity are not in [0, 1]);
- ``MAP_RTOL`` / ``MAP_MIN_R``: each map (one image, one explainer) moves by at most 1e-4 of its own
  largest magnitude, and correlates with the recorded map at r ≥ 0.99999;
- ``SCORE_ATOL``: a metric that differences two nearly equal outputs gets a wider bound. Infidelity
  compares Iᵀφ with f(x) − f(x − I) for perturbations of σ = 0.02, so Δf is ~1 % of f and its
  relative rounding error is ~100 × that of f: 1e-4;
- ``SANITY_ATOL``: the sanity check's similarities are Spearman ρ between the recorded maps and
  the maps of randomised models, which are not recorded (so their near-ties cannot be listed):
  each swap of two adjacent ranks moves ρ by at most 24/D² ≈ 2.3e-5 at D = 1,024 pixels, and a
  superpixel explainer swaps whole segments of tied pixels: 1e-3. The verdict must be equal
  unless the final similarity is within that bound of the threshold;
- everything discrete (tags, argmax, sample indices, pointing-game hits, superpixel choices,
  anchors, counterfactual regions, verdicts, pass counts) is equal;
- near-ties: a score computed from a map's pixel order (deletion, insertion, naive faithfulness,
  ROAD: ``cuts`` says at which ranks each cuts the order) is discrete in that order. Where the
  recorded map has two pixels on either side of a cut whose values differ by less than rounding
  can move them (0 < gap ≤ 2 · ``MAP_RTOL`` · max |map|), another kernel order may swap them and
  the score jumps; ``compare`` lists each such (column, row) with its gap and does not compare it.
  Pixels of one segment share one value on every machine and are ordered by a seeded
  permutation, so a cut inside a segment is stable; its gaps to the next values are what count.
  Ties of distinct segments that only look exact on the recording machine are in ``NEAR_TIES``.

Measured (``python tests/test_golden_cpu.py --measure``): AVX2 kernels in ATen, MKL and oneDNN
instead of AVX-512 (what a CPU without AVX-512 runs) move maps by ≤ 2.5e-5 of their maximum
(r ≥ 0.9999999999) while ~190 of 616 bit-for-bit digests differ; every difference beyond the
bounds above is a near-tie (473 of 1,836 rank-based score rows, KernelSHAP's included). A real
second CPU model (the record's AMD EPYC against an Intel Xeon with AVX512-FP16 and AVX-VNNI)
showed what that simulation had not: toy LIME and RISE maps of ~1e-32 and ~1e-17 and toy
infidelity of ratios of rounding errors, where ColourNet's outputs do not move at all (LIME,
RISE) or by 4 ulps (infidelity's channel-shared noise, which its features cancel). Those were
product bugs — numbers made of the kernel order — fixed in ``xai_core/rounding.py`` (exact-zero
maps, NaN infidelity) and recorded again on the Intel machine; the AVX2 simulation there and
the old AMD record agree with the new record everywhere else.
Pre-AVX2 dispatch (``ATEN_CPU_CAPABILITY=default``, SSE4) is out of scope: integrated gradients at
8 steps moves by up to 6e-3 of its maximum there.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

PROB_ATOL = 1e-5
MAP_RTOL = 1e-4
MAP_MIN_R = 0.99999
SCORE_ATOL = {"infidelity": 1e-4}
SANITY_ATOL = 1e-3
# {explainer: why its rank-based scores are near-ties that ``order_near_ties`` cannot see}.
NEAR_TIES = {
    "kernel_shap": "at 16 coalitions over ~13 superpixels, segments that every coalition keeps or drops "
                   "together get exactly equal weights; rounding elsewhere splits them, and the pixel "
                   "order between those segments (and so every rank-based score) follows the split",
}

VALUES = Path(__file__).parent / "cpu_values.npz"


# ---- collecting ----------------------------------------------------------------------------------

def collect(parts: list[dict], sanity: dict | None, model_passes: int) -> dict:
    """{column: value} of what ``compute_part`` returned for every part (``parts``), the sanity
    check's results and the model's pass count."""
    cat = lambda key, col: [v for r in parts for v in r[key][col]]  # noqa: E731
    out: dict = {"parts": len(parts), "model_passes": int(model_passes)}
    out["samples/probs"] = np.asarray(cat("samples", "probs"), dtype=np.float32)
    for col in parts[0]["labels"]:
        vals = cat("labels", col)
        out[f"labels/{col}"] = np.asarray(vals, dtype=np.float64) if isinstance(vals[0], float) else _plain(vals)
    scores = {k: cat("scores", k) for k in parts[0]["scores"]}
    for e, m in sorted(set(zip(scores["explainer"], scores["metric"]))):
        sel = [i for i, pair in enumerate(zip(scores["explainer"], scores["metric"])) if pair == (e, m)]
        out[f"scores/{e}/{m}"] = {"raw": np.asarray([scores["raw"][i] for i in sel], dtype=np.float64),
                                  "score": np.asarray([scores["score"][i] for i in sel], dtype=np.float64),
                                  "sample_index": np.asarray([scores["sample_index"][i] for i in sel]),
                                  "label": np.asarray([scores["label"][i] for i in sel])}
    for name in parts[0]["saliency"]:
        out[f"maps/{name}"] = np.concatenate([r["saliency"][name] for r in parts])
    details = {k: cat("details", k) for k in parts[0]["details"]}
    for e, key in sorted(set(zip(details["explainer"], details["key"]))):
        sel = [i for i, pair in enumerate(zip(details["explainer"], details["key"])) if pair == (e, key)]
        out[f"details/{e}/{key}"] = np.asarray([details["value"][i] for i in sel], dtype=np.float64)
    cf = {k: cat("counterfactuals", k) for k in parts[0]["counterfactuals"]}
    out["counterfactuals"] = {k: [float(x) if isinstance(x, float) else _plain(x) for x in v] for k, v in cf.items()}
    out["counterfactuals/rows"] = len(cf["label"])
    for name, res in (sanity or {}).items():
        out[f"sanity/{name}"] = _plain(res)
    return out


def _plain(obj):
    """``obj`` as JSON gives it back (the digests hash that same text, so they do not change)."""
    return json.loads(json.dumps(obj, default=repr))


# ---- bit-for-bit digests (the record since issue 15) ---------------------------------------------

def _canon(a) -> np.ndarray:
    """A float array with one NaN bit pattern (0/0 and np.nan differ in the sign bit)."""
    a = np.ascontiguousarray(np.asarray(a))
    if a.dtype.kind == "f":
        a = a.copy()
        a[np.isnan(a)] = np.nan
    return a


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = _canon(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:20]


def _json_digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=repr).encode()).hexdigest()[:20]


def digests(values: dict) -> dict:
    """The digest of each column, as ``cpu_digests.json`` records them."""
    out = {}
    for col, v in values.items():
        if col.rsplit("/", 1)[-1] == "counterfactuals":
            out[col] = _json_digest({k: [float(x).hex() if isinstance(x, float) else x for x in vals]
                                     for k, vals in v.items() if k != "boxes"} | {"boxes": v["boxes"]})
        elif isinstance(v, int):
            out[col] = v
        elif isinstance(v, np.ndarray):
            out[col] = _digest(v)
        elif isinstance(v, dict) and "raw" in v:  # a score pair
            out[col] = _digest(v["raw"], v["score"], v["sample_index"], v["label"])
        else:  # discrete label columns and sanity results
            out[col] = _json_digest(v)
    return out


# ---- comparing by value --------------------------------------------------------------------------

def _close(got: float, want: float, atol: float = PROB_ATOL) -> bool:
    if isinstance(want, float) and math.isnan(want):
        return isinstance(got, float) and math.isnan(got)
    return abs(got - want) <= atol * max(1.0, abs(want))


def _compare_json(got, want, where: str, atol: float = PROB_ATOL) -> list[str]:
    if isinstance(want, bool) or not isinstance(want, (float, int, list, dict)):
        return [] if got == want else [f"{where}: {want!r} -> {got!r}"]
    if isinstance(want, float) or (isinstance(want, int) and isinstance(got, float)):
        ok = isinstance(got, (int, float)) and not isinstance(got, bool) and _close(float(got), float(want), atol)
        return [] if ok else [f"{where}: {want!r} -> {got!r} (|Δ| > {atol:g})"]
    if isinstance(want, int):
        return [] if got == want and type(got) is type(want) else [f"{where}: {want!r} -> {got!r}"]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{where}: {len(want)} items -> {got!r:.80}"]
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in _compare_json(g, w, f"{where}[{i}]", atol)]
    if not isinstance(got, dict) or set(got) != set(want):
        return [f"{where}: keys {sorted(want)} -> {sorted(got) if isinstance(got, dict) else got!r:.80}"]
    return [d for k in want for d in _compare_json(got[k], want[k], f"{where}.{k}", atol)]


def _compare_floats(got: np.ndarray, want: np.ndarray, where: str, atol: float = PROB_ATOL,
                    excused: np.ndarray | None = None) -> list[str]:
    if got.shape != want.shape:
        return [f"{where}: shape {want.shape} -> {got.shape}"]
    keep = np.ones(want.shape, bool) if excused is None else ~excused
    got, want = got[keep], want[keep]
    nan_g, nan_w = np.isnan(got), np.isnan(want)
    if (nan_g != nan_w).any():
        return [f"{where}: NaN at {np.argwhere(nan_g != nan_w)[0].tolist()} differs"]
    g, w = got[~nan_w].astype(np.float64), want[~nan_w].astype(np.float64)
    bad = np.abs(g - w) > atol * np.maximum(1.0, np.abs(w))
    if bad.any():
        i = int(np.argmax(bad))
        return [f"{where}: {int(bad.sum())} of {g.size} values beyond {atol:g}, e.g. {w[i]!r} -> {g[i]!r}"]
    return []


def order_near_ties(maps: np.ndarray, cuts) -> np.ndarray:
    """(P,) the smallest gap, relative to its map's max |value|, between two distinct values on
    either side of any of the ``cuts`` (ranks) of each map's descending pixel order: the nearest
    pair rounding could swap so that the set of pixels before the cut changes. Where the cut
    falls inside a run of equal values (a segment), the run's gaps to the values above and below
    it count. inf where no such pair exists."""
    flat = np.nan_to_num(maps.reshape(len(maps), -1).astype(np.float64), nan=-np.inf, posinf=np.inf)
    n = flat.shape[1]
    ranks = [c for c in sorted(set(int(c) for c in cuts)) if 0 < c < n]
    out = np.full(len(maps), np.inf)
    for p, row in enumerate(flat):
        v = -np.sort(-row)
        scale = float(np.abs(row[np.isfinite(row)]).max(initial=0.0)) or 1.0
        for c in ranks:
            a, b = v[c - 1], v[c]
            if a > b:
                gap = a - b
            else:  # the cut splits a run of equal values: its neighbours above and below
                above, below = v[v > a], v[v < a]
                gap = min(above.min() - a if above.size else np.inf, a - below.max() if below.size else np.inf)
            if np.isfinite(gap):
                out[p] = min(out[p], gap / scale)
    return out


def _compare_maps(got: np.ndarray, want: np.ndarray, where: str) -> list[str]:
    if got.shape != want.shape:
        return [f"{where}: shape {want.shape} -> {got.shape}"]
    out = []
    for i, (g, w) in enumerate(zip(got.astype(np.float64), want.astype(np.float64))):
        if (np.isnan(g) != np.isnan(w)).any():
            out.append(f"{where}[{i}]: NaN pattern differs")
            continue
        g, w = np.nan_to_num(g).ravel(), np.nan_to_num(w).ravel()
        scale = float(np.abs(w).max())
        err = float(np.abs(g - w).max())
        if err > MAP_RTOL * scale:
            out.append(f"{where}[{i}]: max |Δ| {err:.3g} > {MAP_RTOL:g} × max |map| {scale:.3g}")
        elif w.std() > 0 and g.std() > 0 and (r := float(np.corrcoef(g, w)[0, 1])) < MAP_MIN_R:
            out.append(f"{where}[{i}]: r = {r:.7f} < {MAP_MIN_R}")
    return out


def _compare_array(col: str, got, want, atol: float = PROB_ATOL, excused=None) -> list[str]:
    if not isinstance(got, np.ndarray):
        return [f"{col}: an array -> {type(got).__name__}"]
    if want.dtype.kind == "f":
        if "/maps/" in f"/{col}":
            return _compare_maps(got, want, col)
        return _compare_floats(got, want, col, atol, excused)
    ok = got.shape == want.shape and (got == want).all()
    return [] if ok else [f"{col}: {want.tolist()!r:.80} -> {np.asarray(got).tolist()!r:.80}"]


def _compare_sanity(col: str, got, want) -> list[str]:
    near = (isinstance(want, dict) and isinstance(want.get("final_similarity"), float)
            and abs(want["final_similarity"] - want.get("threshold", math.inf)) <= SANITY_ATOL)
    if near and isinstance(got, dict):  # a verdict within rounding of its threshold
        got, want = {k: v for k, v in got.items() if k != "passed"}, {k: v for k, v in want.items() if k != "passed"}
    return _compare_json(got, want, col, SANITY_ATOL)


def compare(got: dict, want: dict, cuts: dict | None = None) -> tuple[list[str], list[str]]:
    """(differences beyond the tolerances, near-ties not compared), one line each. ``cuts``:
    {metric name: the ranks at which it cuts a map's pixel order} for the rank-based metrics."""
    diffs: list[str] = []
    ties: list[str] = []
    for col in sorted(set(got) | set(want)):
        if col not in got or col not in want:
            diffs.append(f"{col}: {'missing' if col not in got else 'not recorded'}")
            continue
        g, w = got[col], want[col]
        model, kind, rest = (col.split("/", 2) + ["", ""])[:3]
        if isinstance(w, np.ndarray):
            diffs += _compare_array(col, g, w)
        elif kind == "scores" and isinstance(g, dict):  # {raw, score, sample_index, label}
            explainer, metric = rest.split("/", 1)
            excused = None
            maps = want.get(f"{model}/maps/{explainer}")
            if cuts and metric in cuts and explainer in NEAR_TIES:
                excused = np.ones(len(w["raw"]), bool)
                ties.append(f"{col}: every row ({NEAR_TIES[explainer]})")
            elif cuts and metric in cuts and isinstance(maps, np.ndarray) and len(maps) == len(w["raw"]):
                gaps = order_near_ties(maps, cuts[metric])
                excused = gaps <= 2 * MAP_RTOL
                ties += [f"{col}[{i}]: gap {gaps[i]:.2g} of max |map| at a cut of its pixel order"
                         for i in np.flatnonzero(excused)]
            atol = SCORE_ATOL.get(metric, PROB_ATOL)
            for key in ("raw", "score", "sample_index", "label"):
                diffs += _compare_array(f"{col}/{key}", g.get(key), w[key], atol,
                                        excused if key in ("raw", "score") else None)
        elif kind == "sanity":
            diffs += _compare_sanity(col, g, w)
        else:
            diffs += _compare_json(g, w, col)
    return diffs, ties


def deviation(got: dict, want: dict, cuts: dict | None = None) -> dict:
    """How far ``got`` is from ``want``: the largest |Δ| of the float columns, the largest map error
    relative to its map's maximum, the smallest map correlation, the differing digests and the
    columns ``compare`` reports."""
    floats, maps, rs = 0.0, 0.0, 1.0
    for col, w in want.items():
        g = got.get(col)
        pairs = ([(g.get(k), x) for k, x in w.items()] if isinstance(w, dict) and isinstance(g, dict) else [(g, w)])
        for gg, ww in pairs:
            if not (isinstance(ww, np.ndarray) and ww.dtype.kind == "f" and isinstance(gg, np.ndarray)
                    and gg.shape == ww.shape):
                continue
            gg, ww = np.nan_to_num(gg.astype(np.float64)), np.nan_to_num(ww.astype(np.float64))
            if "/maps/" not in f"/{col}":
                floats = max(floats, float(np.abs(gg - ww).max(initial=0)))
                continue
            for a, b in zip(gg, ww):
                maps = max(maps, float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)))
                if a.std() > 0 and b.std() > 0:
                    rs = min(rs, float(np.corrcoef(a.ravel(), b.ravel())[0, 1]))
    dg, dw = digests(got), digests(want)
    diffs, ties = compare(got, want, cuts)
    return {"max_abs_float_delta": floats, "max_map_delta_over_max": maps, "min_map_r": rs,
            "digests_differing": sorted(k for k in dw if dg.get(k) != dw[k]), "beyond_tolerance": diffs,
            "near_ties": ties}


# ---- storing -------------------------------------------------------------------------------------

def save(values: dict, path: Path = VALUES, **meta) -> None:
    """Arrays into an .npz, the rest (and the shape of the record) as one JSON string inside it."""
    arrays, plain = {}, {}
    for col, v in values.items():
        if isinstance(v, np.ndarray):
            arrays[col] = v
        elif isinstance(v, dict) and any(isinstance(x, np.ndarray) for x in v.values()):
            arrays.update({f"{col}//{k}": x for k, x in v.items()})
        else:
            plain[col] = v
    np.savez_compressed(path, __json__=np.asarray(json.dumps({"plain": plain, "meta": meta}, sort_keys=True)),
                        **arrays)


def load(path: Path = VALUES) -> tuple[dict, dict]:
    """(values, meta) as ``save`` wrote them."""
    with np.load(path, allow_pickle=False) as z:
        head = json.loads(str(z["__json__"]))
        values: dict = dict(head["plain"])
        for key in z.files:
            if key == "__json__":
                continue
            col, _, sub = key.partition("//")
            if sub:
                values.setdefault(col, {})[sub] = z[key]
            else:
                values[col] = z[key]
    return values, head["meta"]
