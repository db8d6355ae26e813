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
label, uncertainty and counterfactual digest stayed as it was at 9506794. Issue 22 changed numbers
on purpose once more: toy LIME/RISE maps and toy infidelity that were float rounding (see
``golden/values.py``) are now exact zeros and NaN, and the record was made again (on an Intel
Xeon; its fingerprint is in the digests' file).

Two comparisons of that one computation (issue 22):

- **by value**, everywhere: ``golden/cpu_values.npz`` keeps every probability, label value,
  score, detail, map, counterfactual row and sanity result; they must agree within what float
  rounding in another kernel order explains. The tolerances and their reasoning are stated once,
  in ``golden/values.py`` (probabilities and continuous scores |Δ| ≤ 1e-5; each map max |Δ| ≤ 1e-4
  of its largest magnitude and r ≥ 0.99999; discrete results equal, near-ties listed there).
- **bit for bit**, only where the digests were recorded: same torch, ISA dispatch, CPU vendor and
  kernel-relevant flags, forced-ISA variables and threads (``fingerprint``); elsewhere it skips and
  names what differs.

Both fixtures are written together (only when a change of numbers is intended, and say so in the
commit) by ``python tests/test_golden_cpu.py``; ``--measure`` prints how far this machine's
numbers are from the record.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from golden import values

DIGESTS = Path(__file__).parent / "golden" / "cpu_digests.json"

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


def compute_values(cfg_dict: dict) -> dict:
    """{column: value} of everything a run of ``cfg_dict`` computes (engine, no writer)."""
    from xai_core.config import config_from_dict
    from xai_core.engine import RunContext, compute_part, part_indices, sanity_checks

    cfg = config_from_dict(cfg_dict)
    ctx = RunContext.build(cfg)
    parts = [compute_part(ctx, p, idx) for p, idx in enumerate(part_indices(len(ctx.dataset), cfg.batch_size))]
    sanity = sanity_checks(ctx)
    return values.collect(parts, sanity, ctx.model.passes)


# CPU flags that change which kernels ATen, MKL and oneDNN pick (and so the last bits).
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")
GOLDEN_THREADS = 1  # intra-op threads of every golden computation (``_run`` sets them)
ISA_ENV = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def fingerprint() -> dict:
    """What must match for bit-for-bit equality: torch (and its MKL/oneDNN), the ISA it dispatches
    to, the CPU's vendor and kernel-relevant flags, forced-ISA variables, intra-op threads."""
    vendor, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, val = line.partition(":")
            if key.strip() == "vendor_id":
                vendor = val.strip()
            elif key.strip() == "flags":
                flags = set(val.split())
                break
    except OSError:
        pass
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "vendor": vendor, "flags": sorted(flags & set(KERNEL_FLAGS)),
            "isa_env": {k: os.environ[k] for k in ISA_ENV if k in os.environ}, "threads": GOLDEN_THREADS}


def _run(tmp: Path, which=tuple(MODELS), **model_over) -> dict:
    from toy import make_dataset

    data = make_dataset(tmp / "data", n=6)
    out = {}
    # One intra-op thread, as the record was made: an earlier test of the suite may have left
    # torch with more (a run's ``threads``), and the digests depend on it.
    threads = torch.get_num_threads()
    torch.set_num_threads(GOLDEN_THREADS)
    try:
        for name in which:
            got = compute_values(golden_config(data, tmp / f"run-{name}", name, **model_over))
            out.update({f"{name}/{k}": v for k, v in got.items()})
    finally:
        torch.set_num_threads(threads)
    return out


def rank_cuts() -> dict[str, list[int]]:
    """{metric: the ranks at which it cuts a map's pixel order}, from the metrics' own code at the
    golden parameters: what ``values.compare`` needs to list near-ties."""
    from xai_core.metrics import METRICS

    from toy import SIZE

    n_pix = SIZE * SIZE

    def metric(name):
        return METRICS.get(name)(METRIC_PARAMS.get(name, {}))

    cuts = {}
    for name in ("deletion_auc", "insertion_auc"):
        steps = metric(name).params.steps
        cuts[name] = torch.round(torch.linspace(0, n_pix, steps + 1)).long().tolist()
    lo, hi = metric("naive_faithfulness").chunk_bounds(n_pix)
    cuts["naive_faithfulness"] = lo.tolist() + hi.tolist()
    for name in ("road_morf", "road_lerf"):
        m = metric(name)
        moved = [int(m.removed(torch.arange(n_pix), float(f), n_pix).sum()) for f in m.params.fractions]
        cuts[name] = moved + [n_pix - k for k in moved]
    return cuts


@pytest.fixture(scope="module")
def computed(tmp_path_factory) -> dict:
    """The golden run on this machine, once for the module: `device: cpu` explicitly (issue 15)."""
    return _run(tmp_path_factory.mktemp("golden"), device="cpu")


@pytest.fixture(scope="module")
def recorded() -> dict:
    if not values.VALUES.is_file():
        pytest.fail(f"{values.VALUES} is missing; record it with python {Path(__file__).name}")
    return values.load()[0]


def test_the_golden_run_matches_its_recorded_values_within_rounding(computed, recorded):
    diff, ties = values.compare(computed, recorded, rank_cuts())
    print(f"{len(ties)} near-ties not compared:", *ties, sep="\n  ")
    assert not diff, f"{len(diff)} numbers changed beyond rounding:\n" + "\n".join(diff[:60])


def test_the_golden_run_is_bit_for_bit_on_the_recorded_machine(computed):
    fixture = json.loads(DIGESTS.read_text())
    here, there = fingerprint(), fixture["environment"]
    if here != there:
        pytest.skip("bit-for-bit digests were recorded on another machine (" + "; ".join(
            f"{k}: {there.get(k)!r} there, {here.get(k)!r} here" for k in sorted(set(here) | set(there))
            if here.get(k) != there.get(k)) + "); the by-value test covers this one")
    got, want = values.digests(computed), fixture["digests"]
    diff = [f"{k}: {want.get(k)} -> {got.get(k)}" for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)]
    assert not diff, "numbers changed:\n" + "\n".join(diff)


def _one_ulp_beyond(w: float, tol: float, dtype) -> tuple:
    """(the last value of ``dtype`` within ``tol`` of ``w``, the first one beyond it)."""
    g = dtype(w + tol)
    while float(g) - w > tol:
        g = np.nextafter(g, dtype(-np.inf))
    return g, np.nextafter(g, dtype(np.inf))


@pytest.mark.parametrize("kind", ["probability", "score", "map", "detail"])
def test_one_ulp_beyond_the_tolerance_fails_and_within_passes(recorded, kind):
    col, key = {"probability": ("resnet/samples/probs", None), "score": ("resnet/scores/gradient/sparseness", "score"),
                "map": ("resnet/maps/integrated_gradients", None),
                "detail": ("resnet/details/deeplift/completeness_error", None)}[kind]
    want = recorded[col] if key is None else recorded[col][key]
    flat = want.reshape(-1)
    i = int(np.argmin(np.abs(flat)))  # a small entry: not the map's own maximum (its scale)
    w = float(flat[i])
    tol = (values.MAP_RTOL * float(np.abs(want[np.unravel_index(i, want.shape)[0]]).max()) if kind == "map"
           else values.PROB_ATOL * max(1.0, abs(w)))
    for value, fails in zip(_one_ulp_beyond(w, tol, want.dtype.type), (False, True)):
        changed = flat.copy()
        changed[i] = value
        got = dict(recorded)
        got[col] = changed.reshape(want.shape) if key is None else {**recorded[col], key: changed.reshape(want.shape)}
        diff, _ = values.compare(got, recorded, rank_cuts())
        assert bool(diff) == fails and all(d.startswith(col) for d in diff), (value, diff)


def test_a_changed_tag_or_sanity_verdict_fails(recorded):
    tags = next(c for c in recorded if c.startswith("toy/labels/tag"))
    got = dict(recorded)
    got[tags] = list(recorded[tags])
    got[tags][0] = next(t for t in ("TP", "FP", "FN", "TN") if t != got[tags][0])
    assert values.compare(got, recorded)[0] == [f"{tags}[0]: {recorded[tags][0]!r} -> {got[tags][0]!r}"]
    sanity = next(c for c in recorded if c.startswith("resnet/sanity/") and recorded[c]["passed"] is not None)
    flipped = {**recorded[sanity], "passed": not recorded[sanity]["passed"]}
    assert values.compare({**recorded, sanity: flipped}, recorded)[0] == [
        f"{sanity}.passed: {recorded[sanity]['passed']!r} -> {flipped['passed']!r}"]


def test_a_real_change_of_the_inputs_fails_by_value(recorded, tmp_path):
    # One pixel of one input image moved by 1/64 (four 8-bit steps): far beyond rounding, so some
    # maps and some scores of the toy run leave their tolerances.
    from xai_core.data import base as data_base

    real = data_base.prepare_batch

    def nudged(*args, **kwargs):
        batch = real(*args, **kwargs)
        if batch.indices and batch.indices[0] == 0:
            batch.pixels[0, 0, 5, 5] += 1 / 64
        return batch

    with pytest.MonkeyPatch.context() as mp:
        import xai_core.engine as engine

        mp.setattr(engine, "prepare_batch", nudged)
        got = _run(tmp_path, which=("toy",), device="cpu")
    diff, _ = values.compare(got, {k: v for k, v in recorded.items() if k.startswith("toy/")}, rank_cuts())
    assert any("/maps/" in d for d in diff) and any("/scores/" in d for d in diff), diff


if __name__ == "__main__":
    # python tests/test_golden_cpu.py            record both fixtures (only when a change of numbers
    #                                            is intended: say so in the commit)
    # python tests/test_golden_cpu.py --measure [FILE.npz]  how far this machine's numbers are from the record
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    torch.set_num_threads(1)  # as tests/conftest.py
    with tempfile.TemporaryDirectory() as tmp:
        got = _run(Path(tmp), device="cpu")
    if "--measure" in sys.argv:
        if len(sys.argv) > 2:  # a path: keep this machine's values there too
            values.save(got, Path(sys.argv[2]), fingerprint=fingerprint())
        print(json.dumps({"fingerprint": fingerprint(), **values.deviation(got, values.load()[0], rank_cuts())}, indent=1))
        sys.exit(0)
    values.save(got, fingerprint=fingerprint())
    DIGESTS.write_text(json.dumps({"environment": fingerprint(), "digests": values.digests(got)}, indent=1,
                                  sort_keys=True) + "\n")
    print(f"wrote {values.VALUES} and {DIGESTS}: {len(got)} columns")
