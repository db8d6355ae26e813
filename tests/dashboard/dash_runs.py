"""Runs for the dashboard tests: one made by the runner on the toy dataset (all four tags),
small ones written with the writer API with known values, and broken ones.

Imported by the conftests of tests/dashboard, tests/pages and tests/browser; the runner run
is built once per test process (module-level memo), since it is the slow part (~5 s).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

import toy  # tests/toy.py (tests/ is on sys.path via tests/conftest.py)

_MEMO: dict = {}

RUNNER_RUN = "toy/colour"      # run name under the shared logdir
ANALYSES_RUN = "toy/analyses"  # runner-made, with MC-dropout uncertainty and counterfactuals
SYNTH_RUN = "synthetic"
MANY_CLASSES_RUN = "synthetic_1000"  # a model with 1000 classes, 3 of them explained


def _tag_dataset(root: Path) -> Path:
    """The toy dataset with two labels edited so the run has all four tags: image s002 loses
    its second label (its square is still predicted → FP) and s003 (no square) claims "red"
    (ground truth, not predicted → FN). TN comes from top_k = 3."""
    manifest = toy.make_dataset(root)
    lines = [json.loads(l) for l in manifest.read_text().splitlines()]
    for row in lines:
        if row["id"] == "s002":
            row["labels"] = row["labels"][:1]
            row["boxes"] = row["boxes"][:1]
        if row["id"] == "s003":
            row["labels"] = ["red"]
    manifest.write_text("".join(json.dumps(l) + "\n" for l in lines))
    return manifest


def build_runner_run(out: Path) -> Path:
    import torch

    from xai_core.config import config_from_dict
    from xai_core.runner import run

    manifest = _tag_dataset(out.parent / "_data")
    # One thread: on a shared 2-core machine torch's default pool makes this 15× slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = toy.toy_config(manifest, out,
                         explainers=["gradient", "gradcam", "random"],
                         metrics=[{"type": "deletion_auc", "params": {"steps": 8}},
                                  {"type": "insertion_auc", "params": {"steps": 8}}, "pointing_game", "iosr",
                                  # gradient beats gradcam on sparseness and loses on deletion:
                                  # weights can flip the ranking. class_sensitivity is label-agnostic.
                                  "sparseness", "class_sensitivity"],
                         labels={"threshold": 0.5, "top_k": 3})
    try:
        return run(config_from_dict(cfg), out, progress=False)
    finally:
        torch.set_num_threads(threads)


class SharpColourNet(toy.ColourNet):
    """ColourNet that needs a crisp square (bias −0.6 instead of −0.3: p(square colour) ≈ 0.77
    on the image, < 0.5 once the counterfactual search blurs it; ColourNet's blurred square
    keeps p ≈ 0.83 and would need no window), with a dropout of its own on the pooled
    features so that MC dropout has a spread (inserted before the max-pool it has almost none)."""

    def __init__(self):
        import torch

        super().__init__()
        with torch.no_grad():
            self.features[0].bias.fill_(-0.6)
        self.drop = torch.nn.Dropout(0.2)

    def forward(self, x):
        return 8.0 * self.drop(self.pool(self.features(x)).flatten(1)) - 2.0


def sharp_colour_net():
    return SharpColourNet().eval()


def build_analyses_run(out: Path, manifest: Path) -> Path:
    """A small runner run with the optional analyses on: uncertainty (interval chips, std
    filter), two layers of counterfactuals (the Counterfactual page) and anchors (precision and
    coverage in the captions). About 2 s."""
    import torch

    from xai_core.config import config_from_dict
    from xai_core.runner import run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    anchors = {"type": "anchors", "params": {"max_passes": 200, "initial_samples": 16, "draw_size": 8}}
    cfg = toy.toy_config(manifest, out, explainers=["gradient", anchors], metrics=[], labels={"threshold": 0.5, "top_k": 2},
                         uncertainty={"enabled": True, "passes": 4}, counterfactual={"enabled": True, "layers": 2})
    cfg["model"]["factory"] = "dash_runs:sharp_colour_net"
    try:
        return run(config_from_dict(cfg), out, progress=False)
    finally:
        torch.set_num_threads(threads)


def shared_logdir(tmp_path_factory) -> Path:
    """A logdir holding the runner run and a synthetic run; built once per process."""
    if "logdir" not in _MEMO:
        root = tmp_path_factory.mktemp("dash_logdir")
        build_runner_run(root / RUNNER_RUN)
        build_analyses_run(root / ANALYSES_RUN, root / "toy" / "_data" / "manifest.jsonl")
        shutil.rmtree(root / "toy" / "_data", ignore_errors=True)
        write_synthetic(root / SYNTH_RUN, sanity={"a": {"passed": True, "final_similarity": 0.12},
                                                  "b": {"passed": False, "final_similarity": 0.93}})
        write_synthetic(root / MANY_CLASSES_RUN, classes=CLASSES + [f"unused{i}" for i in range(997)])
        write_broken(root)
        _MEMO["logdir"] = root
    return _MEMO["logdir"]


# ---- a run with known values, written with the writer API --------------------------------
CLASSES = ["cat", "dog", "bird"]
# sample_index → [(label, prob, tag, is_gt)], in the writer's order (decreasing probability)
LABELS = {
    0: [(0, 0.90, "TP", True), (1, 0.60, "FP", False)],
    1: [(1, 0.80, "TP", True)],
    2: [(2, 0.70, "FP", False), (0, 0.20, "FN", True)],
    3: [(1, 0.40, "TN", False)],
    4: [(0, 0.95, "TP", True), (2, 0.55, "TP", True)],
}
# per (sample, label): (explainer "a" score, explainer "b" score) on metric "m1" (label-specific)
M1 = {(0, 0): (0.9, 0.1), (0, 1): (0.2, 0.3), (1, 1): (0.5, np.nan), (2, 2): (0.1, 0.4), (2, 0): (0.7, 0.6),
      (3, 1): (0.3, 0.2), (4, 0): (0.6, 0.8), (4, 2): (np.inf, 0.5)}
# per sample: (a, b) on "m2" (label-agnostic, lower raw is better)
M2 = {0: (0.1, 0.9), 1: (0.2, 0.8), 2: (0.3, 0.7), 3: (0.4, 0.6), 4: (0.5, 0.5)}
SIZE = 8


def synthetic_map(sample: int, label: int, explainer: str) -> np.ndarray:
    """Signed, unnormalised: explainer "b" is 10× "a" and negated, so scales differ."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    m = (x + SIZE * y + sample + label).astype(np.float32) - SIZE * SIZE / 2
    return m if explainer == "a" else -10.0 * m


def write_synthetic(run_dir: Path, *, parts=((0, 1, 2), (3, 4)), sanity: dict | None = None,
                    prob_std: bool = False, classes: list[str] = CLASSES, between_parts=None,
                    counterfactuals: dict | None = None) -> Path:
    """``classes``: the model's classes (the first three are the explained ones).
    ``between_parts()`` is called after each committed part (a writer still at work);
    ``counterfactuals``: {part: rows of its counterfactuals table}, for the parts that have one."""
    from xai_core.summary.writer import RunWriter, write_part

    metrics = [
        {"name": "m1", "type": "m1", "display_name": "Metric one", "category": "faithfulness",
         "higher_is_better": True, "value_range": [0, 1], "label_agnostic": False},
        {"name": "m2", "type": "m2", "display_name": "Metric two", "category": "robustness",
         "higher_is_better": False, "value_range": [0, 1], "label_agnostic": True},
        {"name": "m3", "type": "m3", "display_name": "Metric three", "category": "localization",
         "higher_is_better": True, "value_range": [0, 1], "label_agnostic": False},
    ]
    manifest = {"classes": list(classes), "model": {"factory": "synthetic:model"}, "dataset": {"kind": "synthetic"},
                "explainers": [{"name": "a", "type": "a", "signed": True}, {"name": "b", "type": "b", "signed": True}],
                "metrics": metrics,
                "progress": {"total_samples": 5, "done_samples": 0, "total_parts": len(parts), "done_parts": 0}}
    if sanity is not None:
        manifest["sanity"] = sanity
    w = RunWriter.create(run_dir, manifest, overwrite=True)
    done = 0
    for p, idx in enumerate(parts):
        rows = [(i, r) for i in idx for r in LABELS[i]]
        probs = []
        for i in idx:
            pr = [0.05] * len(classes)
            for lab, prob, _, _ in LABELS[i]:
                pr[lab] = prob
            probs.append(pr)
        samples = {"sample_index": list(idx), "sample_id": [f"img{i}" for i in idx], "source": [f"src/{i}.png" for i in idx],
                   "part": [p] * len(idx), "offset": list(range(len(idx))),
                   "gt_labels": [[l for l, _, _, g in LABELS[i] if g] for i in idx], "probs": probs,
                   "boxes": [[[0, 1, 1, 4, 4]] if i == 0 else [] for i in idx],
                   "height": [SIZE] * len(idx), "width": [SIZE] * len(idx)}
        labels = {"sample_index": [i for i, _ in rows], "label": [r[0] for _, r in rows], "prob": [r[1] for _, r in rows],
                  "tag": [r[2] for _, r in rows], "is_gt": [r[3] for _, r in rows],
                  "is_pred": [r[2] in ("TP", "FP") for _, r in rows], "in_top_k": [True] * len(rows),
                  "part": [p] * len(rows), "map_offset": list(range(len(rows)))}
        scores = {k: [] for k in ("sample_index", "label", "explainer", "metric", "raw", "score")}
        for ei, e in enumerate("ab"):
            for i, r in rows:
                v = M1[(i, r[0])][ei]
                scores["sample_index"].append(i); scores["label"].append(r[0]); scores["explainer"].append(e)
                scores["metric"].append("m1"); scores["raw"].append(v); scores["score"].append(v)
            for i in idx:
                v = M2[i][ei]
                scores["sample_index"].append(i); scores["label"].append(-1); scores["explainer"].append(e)
                scores["metric"].append("m2"); scores["raw"].append(v); scores["score"].append(1 - v)
            for i, r in rows:  # m3: only ground-truth labels have a value
                v = (0.25 if e == "a" else 0.75) if r[3] else np.nan
                scores["sample_index"].append(i); scores["label"].append(r[0]); scores["explainer"].append(e)
                scores["metric"].append("m3"); scores["raw"].append(v); scores["score"].append(v)
        images = np.stack([np.full((SIZE, SIZE, 3), 40 * (i + 1), np.uint8) for i in idx])
        saliency = {e: np.stack([synthetic_map(i, r[0], e) for i, r in rows]) for e in "ab"}
        if prob_std:  # MC-dropout uncertainty columns (optional in the format)
            labels["prob_std"] = [0.01 * (i + 1) * (r[0] + 1) for i, r in rows]
            labels["ci_low"] = [max(0.0, r[1] - 0.1) for _, r in rows]
            labels["ci_high"] = [min(1.0, r[1] + 0.1) for _, r in rows]
        write_part(run_dir, p, samples=samples, labels=labels, scores=scores, images=images, saliency=saliency,
                   counterfactuals=(counterfactuals or {}).get(p))
        done += len(idx)
        w.progress(done, p + 1, force=True)
        if between_parts is not None:
            between_parts()
    w.finish("complete")
    return run_dir


def write_running(run_dir: Path) -> Path:
    """A run whose writer is still at work: the first of its two parts is committed."""
    write_synthetic(run_dir)
    from xai_core.summary.manifest import read_manifest, write_manifest

    m = read_manifest(run_dir)
    m.update(status="running", finished=None)
    m["progress"].update(done_samples=3, done_parts=1)
    write_manifest(run_dir, m)
    (run_dir / "tables" / "samples" / "part-000001.parquet").unlink()  # part 1 not committed yet
    return run_dir


def write_broken(logdir: Path) -> dict[str, Path]:
    """Runs that must show a clear message: corrupt manifest, newer format, corrupt part."""
    out = {}
    bad = logdir / "broken" / "corrupt_manifest"
    bad.mkdir(parents=True)
    (bad / "manifest.json").write_text("{not json")
    out["corrupt_manifest"] = bad
    newer = write_synthetic(logdir / "broken" / "newer")
    m = json.loads((newer / "manifest.json").read_text())
    m["format_version"] = 99
    (newer / "manifest.json").write_text(json.dumps(m))
    out["newer"] = newer
    part = write_synthetic(logdir / "broken" / "corrupt_part")
    (part / "tables" / "labels" / "part-000001.parquet").write_bytes(b"PAR1 garbage")
    out["corrupt_part"] = part
    out["failed"] = write_failed(logdir / "broken" / "failed")
    return out


FAILED_ERROR = "ModelError: model factory 'synthetic:model' raised RuntimeError: out of memory"


def write_failed(run_dir: Path) -> Path:
    """A run that failed before committing any image: the dashboard must show its error."""
    from xai_core.summary.writer import RunWriter

    w = RunWriter.create(run_dir, {"classes": CLASSES, "model": {"factory": "synthetic:model"},
                                   "dataset": {"kind": "synthetic"}, "explainers": [{"name": "a", "type": "a"}],
                                   "metrics": [], "progress": {"total_samples": 5, "done_samples": 0,
                                                               "total_parts": 2, "done_parts": 0}})
    w.finish("failed", error=FAILED_ERROR)
    return run_dir


def write_while(run_dir: Path, stop, pause_s: float = 0.2) -> int:
    """Write the 5-part synthetic run into ``run_dir`` again and again, one part at a time (the
    manifest rewritten at each commit), until ``stop`` (a threading.Event) is set: another run
    being written into the logdir. Returns how many runs were written."""
    n = 0
    while not stop.is_set():
        write_synthetic(run_dir, parts=tuple((i,) for i in range(5)), between_parts=lambda: stop.wait(pause_s))
        n += 1
    return n
