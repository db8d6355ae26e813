"""``xai-core demo``: build the demo data and model if missing, then run the default
configuration on the test split."""

from __future__ import annotations

from pathlib import Path

from ..config import config_from_dict
from ..runner import run

# A spread of method families (gradients, CAM, path, sampling, perturbation, anchors) and the
# `random` reference every method should beat; metrics of every category that is cheap enough
# to run per image on two cores (robustness metrics re-explain each pair 10-20 times: run them
# in your own config, see README). Every registered method works here: pass --explainers.
DEFAULT_EXPLAINERS = ["gradient", "gradcam", "integrated_gradients", "smoothgrad", "occlusion", "anchors", "random"]
DEFAULT_METRICS = ["deletion_auc", "insertion_auc", "pointing_game", "iosr", "relevance_mass_accuracy",
                   "relevance_rank_accuracy", "sparseness", "complexity"]


def demo_config_dict(data_dir: str | Path, out: str | Path, *, limit: int | None = None,
                     explainers=None, metrics=None, analyses: bool = True) -> dict:
    """The demo configuration; ``analyses``: MC-dropout uncertainty, hierarchical-occlusion
    counterfactuals and the randomisation sanity check (on 4 images) on top of the maps."""
    from . import IMAGE_SIZE, MEAN, STD

    return {
        "model": {"factory": "xai_core.demo.model:load_demo_model", "activation": "sigmoid",
                  "input_size": [IMAGE_SIZE, IMAGE_SIZE], "mean": list(MEAN), "std": list(STD)},
        "dataset": {"kind": "manifest", "path": str(Path(data_dir) / "manifest.jsonl"), "split": "test",
                    "limit": limit},
        "explainers": list(explainers or DEFAULT_EXPLAINERS),
        "metrics": list(metrics or DEFAULT_METRICS),
        "labels": {"threshold": 0.5, "top_k": 3},
        "uncertainty": {"enabled": analyses, "passes": 10},
        "counterfactual": {"enabled": analyses, "layers": 3},
        # 4 cascading stages instead of 16: the last randomises every layer either way (same
        # verdict), at 7 % of a 64-image run's passes instead of 16 % (issue 24, BENCHMARKS.md)
        "sanity": {"enabled": analyses, "images": 4, "steps": 4},
        "batch_size": 16,
        "seed": 0,
        "out": str(out),
    }


def run_demo(*, limit: int | None = None, out: str | Path = "summaries/demo", data: str | Path = "data/demo",
             progress: bool = True, overwrite: bool = True, explainers=None, metrics=None,
             analyses: bool = True) -> Path:
    from . import WEIGHTS_PATH
    from .dataset import ensure_demo_dataset

    ensure_demo_dataset(data)
    if not Path(WEIGHTS_PATH).is_file():
        from .train import train_demo_model

        train_demo_model(data, WEIGHTS_PATH)
    cfg = config_from_dict(demo_config_dict(Path(data).resolve(), Path(out).resolve(), limit=limit,
                                            explainers=explainers, metrics=metrics, analyses=analyses))
    resume = not overwrite and (Path(out) / "manifest.json").is_file()
    return run(cfg, cfg.out, resume=resume, overwrite=overwrite, progress=progress)
