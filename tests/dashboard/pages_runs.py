"""Runs for the tests of the "Compare runs", "Explain an image" pages and the report: a logdir
of its own (the shared one's run count is asserted elsewhere), built once per test process.

* ``cmp/colour`` — the runner on the toy dataset with ColourNet (all four tags);
* ``cmp/sharp`` — the same images through another model (SharpColourNet, a crisper square
  detector: p ≈ 0.77 on a square) with a stricter threshold (0.8), so labels that are TP in
  ``cmp/colour`` are FN here, and its maps differ; top-1 only, so it explains fewer labels;
* ``other/unrelated`` — a synthetic run over other sample ids (no sample in common);
* ``digits/demo`` — the runner with the demo CNN (committed weights, 64 × 64, loadable by the
  server without the tests on its path) on four 64 × 64 images: the live page's model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

import dash_runs
import toy

_MEMO: dict = {}
RUN_A = "cmp/colour"
RUN_B = "cmp/sharp"
UNRELATED = "other/unrelated"
DIGITS = "digits/demo"
COMPARE_METRICS = [{"type": "deletion_auc", "params": {"steps": 8}}, "pointing_game", "sparseness",
                   "class_sensitivity"]


def _runner(cfg: dict, out: Path) -> Path:
    import torch

    from xai_core.config import config_from_dict
    from xai_core.runner import run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run(config_from_dict(cfg), out, progress=False)
    finally:
        torch.set_num_threads(threads)


def build_pair(root: Path) -> tuple[Path, Path]:
    manifest = dash_runs._tag_dataset(root / "_data")
    a = toy.toy_config(manifest, root / RUN_A, explainers=["gradient", "gradcam", "random"],
                       metrics=COMPARE_METRICS, labels={"threshold": 0.5, "top_k": 3})
    b = toy.toy_config(manifest, root / RUN_B, explainers=["gradient", "gradcam", "random"],
                       metrics=COMPARE_METRICS, labels={"threshold": 0.8, "top_k": 1})
    b["model"]["factory"] = "dash_runs:sharp_colour_net"
    return _runner(a, root / RUN_A), _runner(b, root / RUN_B)


def digit_images(n: int = 4, seed: int = 0) -> list[np.ndarray]:
    """(64, 64, 3) uint8 pictures: a bright bar on a dark textured background."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = rng.integers(20, 60, (64, 64, 3)).astype(np.uint8)
        x = 12 + 10 * i
        img[14:50, x:x + 6] = 230
        out.append(img)
    return out


def build_digits_run(root: Path) -> Path:
    """The demo CNN on four small pictures (a manifest dataset of its own)."""
    from PIL import Image

    from xai_core.demo import CLASSES, MEAN, STD

    data = root / "_digits"
    (data / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, img in enumerate(digit_images()):
        Image.fromarray(img).save(data / "images" / f"d{i}.png")
        lines.append({"id": f"d{i}", "image": f"images/d{i}.png", "labels": ["1"]})
    (data / "manifest.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
    (data / "classes.json").write_text(json.dumps(CLASSES))
    cfg = {
        "model": {"factory": "xai_core.demo.model:load_demo_model", "activation": "sigmoid", "input_size": [64, 64],
                  "mean": list(MEAN), "std": list(STD)},
        "dataset": {"kind": "manifest", "path": str(data / "manifest.jsonl")},
        "explainers": ["gradient", "gradcam", "occlusion"],
        "metrics": ["sparseness", "complexity"],
        "labels": {"threshold": 0.5, "top_k": 2},
        "batch_size": 4, "seed": 0, "out": str(root / DIGITS),
    }
    return _runner(cfg, root / DIGITS)


def pages_logdir(tmp_path_factory) -> Path:
    if "logdir" not in _MEMO:
        root = tmp_path_factory.mktemp("pages_logdir")
        build_pair(root)
        build_digits_run(root)
        shutil.rmtree(root / "_data", ignore_errors=True)
        dash_runs.write_synthetic(root / UNRELATED)
        _MEMO["logdir"] = root
    return _MEMO["logdir"]
