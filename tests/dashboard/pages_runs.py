"""Runs for the tests of the "Compare runs", "Explain an image" pages and the report: a logdir
of its own (the shared one's run count is asserted elsewhere), built once per test process.

* ``cmp/colour`` — the runner on the toy dataset with ColourNet (all four tags);
* ``cmp/sharp`` — the same images through another model (SharpColourNet, a crisper square
  detector: p ≈ 0.77 on a square) with a stricter threshold (0.8), so labels that are TP in
  ``cmp/colour`` are FN here, and its maps differ; top-1 only, so it explains fewer labels;
* ``other/unrelated`` — a synthetic run over other sample ids (no sample in common);
* ``demo/seed0``, ``demo/seed1`` — the demo CNN (committed weights, 64 × 64, loadable by a
  server without the tests on its path) on six real demo images, with two seeds and two
  occlusion windows: the browser test compares them, and the live page uses their model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import dash_runs
import toy

_MEMO: dict = {}
RUN_A = "cmp/colour"
RUN_B = "cmp/sharp"
UNRELATED = "other/unrelated"
DEMO_A = "demo/seed0"     # the live page's model: the demo CNN, loadable by any server
DEMO_B = "demo/seed1"
DEMO_IMAGES = 6
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


def build_demo_pair(root: Path) -> tuple[Path, Path]:
    """Two runs of the demo CNN (committed weights) on six real demo test images: seed 0 with
    an 8 px occlusion window, seed 1 with a 12 px one — "the same model, other explainer
    settings"."""
    from xai_core.demo.dataset import generate_demo_dataset
    from xai_core.demo.runner import demo_config_dict

    data = generate_demo_dataset(root / "_demo_data", n_train=0, n_test=DEMO_IMAGES, seed=0).parent
    out = []
    for name, seed, window in ((DEMO_A, 0, 8), (DEMO_B, 1, 12)):
        cfg = demo_config_dict(data, root / name, analyses=False,
                               explainers=["gradient", "gradcam", {"type": "occlusion", "params": {"window": window,
                                                                                                    "stride": 4}}],
                               metrics=[{"type": "deletion_auc", "params": {"steps": 10}}, "pointing_game",
                                        "sparseness"])
        cfg.update(seed=seed, batch_size=DEMO_IMAGES)
        out.append(_runner(cfg, root / name))
    return out[0], out[1]


def pages_logdir(tmp_path_factory) -> Path:
    if "logdir" not in _MEMO:
        root = tmp_path_factory.mktemp("pages_logdir")
        build_pair(root)
        build_demo_pair(root)
        shutil.rmtree(root / "_data", ignore_errors=True)
        dash_runs.write_synthetic(root / UNRELATED)
        _MEMO["logdir"] = root
    return _MEMO["logdir"]


def load_pair(logdir: Path):
    """The tables of runs A and B of :func:`pages_logdir`."""
    from xai_core.dashboard import RunTables

    return (RunTables.load(logdir / RUN_A, root=logdir), RunTables.load(logdir / RUN_B, root=logdir))


def export_onnx(net, path: Path, *, shape) -> Path:
    """``net`` (normalised input → logits) as an ONNX file with a dynamic batch axis."""
    import warnings

    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.rand(*shape),), str(path), dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path


def png_bytes(image) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def demo_image(logdir: Path, i: int = 0):
    """(H, W, 3) uint8 of the i-th demo image the demo runs explain."""
    from PIL import Image

    files = sorted((logdir / "_demo_data" / "images").glob("test-*.png"))
    return np.asarray(Image.open(files[i]).convert("RGB"))
