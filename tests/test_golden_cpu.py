"""`model.device: cpu` gives the numbers of the code before device placement existed, bit for
bit (issue 15).

A small but broad run — every registered explainer (smoke parameters) and every registered
metric, MC-dropout uncertainty, hierarchical-occlusion counterfactuals and the randomisation
sanity check, on a seeded ResNet-style network (BatchNorm, residual additions, in-place and
functional ReLU) and the toy dataset, two parts — is computed part by part with the engine
and every number it produces is hashed: probabilities, the labels table (tags, uncertainty),
each explainer's maps and details, each (explainer, metric) score column, counterfactual rows,
sanity results. The digests in ``golden/cpu_digests.json`` were recorded on the code before
issue 15 was started (commit 9506794); a single changed bit in one number fails the test and
names the column it is in. They were recorded again once, for issue 16, which added a number
on purpose: the guided methods' ``gradient_correlation`` (one more backward pass per call, so
``model_passes`` and the sanity results' ``forward_passes`` grew); every probability, map, score,
label, uncertainty and counterfactual digest stayed as it was at 9506794.

Float results depend on the CPU's vector instruction set and on torch's version (oneDNN picks
kernels per ISA), so the comparison runs where the fixture was made: same torch version and
``torch.backends.cpu.get_cpu_capability()``; elsewhere the test is skipped with the reason.
Regenerate (only when a change of numbers is intended, and say so in the commit) with
``python tests/test_golden_cpu.py``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURE = Path(__file__).parent / "golden" / "cpu_digests.json"

# Cheap metric parameters: every code path, few passes (sensitivity metrics re-explain).
METRIC_PARAMS = {
    "deletion_auc": {"steps": 5}, "insertion_auc": {"steps": 5}, "naive_faithfulness": {"chunks": 4},
    "road_morf": {"fractions": [0.3, 0.6]}, "road_lerf": {"fractions": [0.3, 0.6]},
    "max_sensitivity": {"samples": 2}, "avg_sensitivity": {"samples": 2}, "infidelity": {"samples": 4},
}


# The ResNet run skips the metrics that re-explain (sensitivities, class sensitivity) and ROAD:
# the toy run covers them at a tenth of the cost.
RESNET_SKIPS = {"max_sensitivity", "avg_sensitivity", "class_sensitivity", "road_morf", "road_lerf"}

MODELS = {
    # ColourNet (tests/toy.py): confident on its squares, and its blurred squares fall below the
    # threshold at std 1.5, so counterfactual searches run.
    "toy": {"factory": "toy:colour_net", "mean": [0.0, 0.0, 0.0], "std": [1.5, 1.5, 1.5]},
    # BatchNorm, residual additions, in-place and functional ReLU, a linear head (MC dropout
    # is inserted before it), 24 parameterised layers for the sanity check.
    "resnet": {"factory": "xai_core.models.zoo:resnet_small", "factory_kwargs": {"num_classes": 3},
               "mean": [0.4, 0.4, 0.4], "std": [0.25, 0.25, 0.25]},
}


def golden_config(data: Path, out: Path, which: str, **model_over) -> dict:
    from xai_core.explainers import EXPLAINERS
    from xai_core.metrics import METRICS

    from toy import SIZE

    skip = RESNET_SKIPS if which == "resnet" else set()
    return {
        "model": {**MODELS[which], "activation": "sigmoid", "input_size": [SIZE, SIZE], "fast_forward": "off",
                  **model_over},
        "dataset": {"kind": "manifest", "path": str(data)},
        # Attention explainers refuse these CNNs (tests/explainers/test_attention.py runs them).
        "explainers": [{"type": c.name, "params": dict(c.smoke_params)} for c in EXPLAINERS if not c.needs_attention],
        "metrics": [{"type": c.name, "params": METRIC_PARAMS.get(c.name, {})} for c in METRICS if c.name not in skip],
        "labels": {"threshold": 0.5, "top_k": 2},
        "uncertainty": {"enabled": True, "passes": 3, "tta_shift": 1, "tta_noise": 0.02},
        "counterfactual": {"enabled": True, "layers": 2},
        "sanity": {"enabled": True, "images": 2},
        "batch_size": 3,
        "explain_batch_size": 8,
        "seed": 0,
        "out": str(out),
    }


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


def compute_digests(cfg_dict: dict) -> dict:
    """{column: digest} of everything a run of ``cfg_dict`` computes (engine, no writer)."""
    from xai_core.config import config_from_dict
    from xai_core.engine import RunContext, compute_part, part_indices, sanity_checks

    cfg = config_from_dict(cfg_dict)
    ctx = RunContext.build(cfg)
    parts = [compute_part(ctx, p, idx) for p, idx in enumerate(part_indices(len(ctx.dataset), cfg.batch_size))]
    out = {"parts": len(parts)}
    cat = lambda key, col: [v for r in parts for v in r[key][col]]  # noqa: E731
    out["samples/probs"] = _digest(np.asarray(cat("samples", "probs"), dtype=np.float32))
    labels = parts[0]["labels"]
    for col in labels:
        vals = cat("labels", col)
        out[f"labels/{col}"] = (_digest(np.asarray(vals, dtype=np.float64)) if isinstance(vals[0], float)
                                else _json_digest(vals))
    scores = {k: cat("scores", k) for k in parts[0]["scores"]}
    keys = sorted(set(zip(scores["explainer"], scores["metric"])))
    for e, m in keys:
        sel = [i for i, (ee, mm) in enumerate(zip(scores["explainer"], scores["metric"])) if (ee, mm) == (e, m)]
        out[f"scores/{e}/{m}"] = _digest(np.asarray([scores["raw"][i] for i in sel], dtype=np.float64),
                                         np.asarray([scores["score"][i] for i in sel], dtype=np.float64),
                                         np.asarray([scores["sample_index"][i] for i in sel]),
                                         np.asarray([scores["label"][i] for i in sel]))
    for name in parts[0]["saliency"]:
        out[f"maps/{name}"] = _digest(np.concatenate([r["saliency"][name] for r in parts]))
    details = {k: cat("details", k) for k in parts[0]["details"]}
    for e, key in sorted(set(zip(details["explainer"], details["key"]))):
        sel = [i for i, (ee, kk) in enumerate(zip(details["explainer"], details["key"])) if (ee, kk) == (e, key)]
        out[f"details/{e}/{key}"] = _digest(np.asarray([details["value"][i] for i in sel], dtype=np.float64))
    cf = {k: cat("counterfactuals", k) for k in parts[0]["counterfactuals"]}
    out["counterfactuals"] = _json_digest({k: [float(x).hex() if isinstance(x, float) else x for x in v]
                                           for k, v in cf.items() if k != "boxes"} | {"boxes": cf["boxes"]})
    out["counterfactuals/rows"] = len(cf["label"])
    for name, res in (sanity_checks(ctx) or {}).items():
        out[f"sanity/{name}"] = _json_digest(res)
    out["model_passes"] = int(ctx.model.passes)
    return out


def environment() -> dict:
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}


def _run(tmp: Path, which=tuple(MODELS), **model_over) -> dict:
    from toy import make_dataset

    data = make_dataset(tmp / "data", n=6)
    out = {}
    for name in which:
        digests = compute_digests(golden_config(data, tmp / f"run-{name}", name, **model_over))
        out.update({f"{name}/{k}": v for k, v in digests.items()})
    return out


def _compare(got: dict, want: dict) -> list[str]:
    return [f"{k}: {want.get(k)} -> {got.get(k)}" for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)]


@pytest.fixture(scope="module")
def golden():
    if not FIXTURE.is_file():
        pytest.fail(f"{FIXTURE} is missing; record it with python {Path(__file__).name}")
    fixture = json.loads(FIXTURE.read_text())
    env = environment()
    for key in ("torch", "cpu_capability"):
        if fixture["environment"][key] != env[key]:
            pytest.skip(f"golden digests were recorded with {key}={fixture['environment'][key]!r}, "
                        f"this machine has {env[key]!r}: float kernels differ; regenerate to compare here")
    return fixture


def test_device_cpu_reproduces_the_golden_run_bit_for_bit(golden, tmp_path):
    # `device: cpu` explicitly, where the key exists (issue 15); before it, the default.
    from xai_core.models.loading import ModelSpec

    over = {"device": "cpu"} if "device" in ModelSpec.__dataclass_fields__ else {}
    diff = _compare(_run(tmp_path, **over), golden["digests"])
    assert not diff, "numbers changed:\n" + "\n".join(diff)


def test_golden_digests_see_a_single_changed_number(golden, tmp_path):
    # The check can fail: nudging one pixel of one input image by one float32 ulp changes
    # some map and some score digests.
    from xai_core.data import base as data_base

    real = data_base.prepare_batch

    def nudged(*args, **kwargs):
        batch = real(*args, **kwargs)
        if batch.indices and batch.indices[0] == 0:
            batch.pixels[0, 0, 5, 5] = torch.nextafter(batch.pixels[0, 0, 5, 5], torch.tensor(2.0))
        return batch

    with pytest.MonkeyPatch.context() as mp:
        import xai_core.engine as engine

        mp.setattr(engine, "prepare_batch", nudged)
        got = _run(tmp_path, which=("toy",))
    diff = _compare(got, {k: v for k, v in golden["digests"].items() if k in got})
    assert any("/maps/" in k for k in diff) and any("/scores/" in k for k in diff), diff


if __name__ == "__main__":  # python tests/test_golden_cpu.py: record the fixture
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    torch.set_num_threads(1)  # as tests/conftest.py
    with tempfile.TemporaryDirectory() as tmp:
        digests = _run(Path(tmp))
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps({"environment": environment(), "digests": digests}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE}: {len(digests)} digests")
