"""``xai-core demo``: build the demo data and model if missing, then run the default
configuration on the test split."""

from __future__ import annotations

from pathlib import Path

from ..config import config_from_dict
from ..runner import run

DEFAULT_EXPLAINERS = ["gradient", "gradcam", "integrated_gradients", "random"]
DEFAULT_METRICS = ["deletion_auc", "insertion_auc", "pointing_game", "iosr"]


def demo_config_dict(data_dir: str | Path, out: str | Path, *, limit: int | None = None,
                     explainers=None, metrics=None) -> dict:
    from . import IMAGE_SIZE, MEAN, STD

    return {
        "model": {"factory": "xai_core.demo.model:load_demo_model", "activation": "sigmoid",
                  "input_size": [IMAGE_SIZE, IMAGE_SIZE], "mean": list(MEAN), "std": list(STD)},
        "dataset": {"kind": "manifest", "path": str(Path(data_dir) / "manifest.jsonl"), "split": "test",
                    "limit": limit},
        "explainers": list(explainers or DEFAULT_EXPLAINERS),
        "metrics": list(metrics or DEFAULT_METRICS),
        "labels": {"threshold": 0.5, "top_k": 3},
        "batch_size": 16,
        "seed": 0,
        "out": str(out),
    }


def run_demo(*, limit: int | None = None, out: str | Path = "summaries/demo", data: str | Path = "data/demo",
             progress: bool = True, overwrite: bool = True, explainers=None, metrics=None) -> Path:
    from . import WEIGHTS_PATH
    from .dataset import ensure_demo_dataset

    ensure_demo_dataset(data)
    if not Path(WEIGHTS_PATH).is_file():
        from .train import train_demo_model

        train_demo_model(data, WEIGHTS_PATH)
    cfg = config_from_dict(demo_config_dict(Path(data).resolve(), Path(out).resolve(), limit=limit,
                                            explainers=explainers, metrics=metrics))
    resume = not overwrite and (Path(out) / "manifest.json").is_file()
    return run(cfg, cfg.out, resume=resume, overwrite=overwrite, progress=progress)
