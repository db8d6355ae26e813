"""Images handed over in memory (``xai_core.explain``, the explanation service), as a dataset.

Accepted images: PIL images, numpy arrays — (H, W) or (H, W, 1|3|4), uint8 or floats in
[0, 1] — a float (or uint8) tensor batch (N, C, H, W) with C = 1 or 3, or a
``torch.utils.data.Dataset`` whose items are ``(image, label)`` (or a bare image). Float pixels
are quantised to 8 bits, as a run stores them: the runner reads what it stores.

The dataset's identity (``identity()``, recorded in the run's manifest and checked when the
same call is run again) is a content hash of every item: ids, pixels, labels, boxes and masks.
Every item is converted once up front, so a bad one fails with one line naming it before
anything is computed; items are converted again when read (nothing is kept but the source).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from ..errors import DatasetError
from .base import Box, Sample, check_boxes, to_rgb8

KIND = "memory"


def _is_tensor(x) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _is_torch_dataset(x) -> bool:
    try:
        from torch.utils.data import Dataset
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return isinstance(x, Dataset)


def to_rgb_array(image, where: str) -> np.ndarray:
    """(H, W, 3) uint8 of one image: PIL, numpy (H, W[, C]) uint8 or [0, 1] floats, or a tensor
    (C, H, W). Grey images are repeated over RGB; an alpha channel is dropped."""
    if isinstance(image, Image.Image):
        try:
            return to_rgb8(image)
        except (ValueError, OSError) as e:
            raise DatasetError(f"{where}: {e}; expected an 8- or 16-bit image") from e
    if _is_tensor(image):
        a = image.detach().cpu().numpy()
        if a.ndim == 3 and a.shape[0] in (1, 3, 4):
            a = np.moveaxis(a, 0, -1)  # tensors are channel-first: (C, H, W) → (H, W, C)
        image = a
    if not isinstance(image, np.ndarray):
        raise DatasetError(f"{where} is {type(image).__name__}; expected a PIL image, a numpy array (H, W[, C]) "
                           "or a tensor (C, H, W)")
    a = image
    if a.ndim == 3 and a.shape[2] in (1, 3, 4):
        a = a[..., :3] if a.shape[2] != 1 else a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3) or min(a.shape[:2]) < 1:
        raise DatasetError(f"{where} has shape {tuple(image.shape)}; expected (H, W), (H, W, 1|3|4) or a tensor (C, H, W)")
    if a.dtype == np.uint8:
        out = a
    elif a.dtype == bool or np.issubdtype(a.dtype, np.integer):
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo < 0 or hi > 255:
            raise DatasetError(f"{where}: integer pixels in [{lo}, {hi}]; expected 0–255")
        out = a.astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if a.size and not np.isfinite(a).all():
            raise DatasetError(f"{where}: NaN or infinite pixels; expected floats in [0, 1]")
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise DatasetError(f"{where}: float pixels in [{lo:.3g}, {hi:.3g}]; expected [0, 1] (pass the raw image "
                               "and give mean/std: normalisation is applied by the model wrapper)")
        out = np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    else:
        raise DatasetError(f"{where}: pixels of type {a.dtype}; expected uint8 or floats in [0, 1]")
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return np.ascontiguousarray(out)


def _label_index(value, classes: Sequence[str], where: str) -> int:
    index = {c: i for i, c in enumerate(classes)}
    if _is_tensor(value):
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, (bool, np.bool_)):
        raise DatasetError(f"{where}: label {value!r}; expected a class index or name")
    if isinstance(value, (int, np.integer)):
        if not 0 <= int(value) < len(classes):
            raise DatasetError(f"{where}: label {int(value)} is out of range; expected 0 … {len(classes) - 1} "
                               f"(one of the {len(classes)} classes)")
        return int(value)
    if isinstance(value, str) and value in index:
        return index[value]
    raise DatasetError(f"{where}: unknown label {value!r}; expected a class index or one of the {len(classes)} "
                       f"classes {list(classes)[:12]}{'…' if len(classes) > 12 else ''}")


def label_set(value, classes: Sequence[str], where: str) -> tuple[int, ...]:
    """Ground-truth class indices of one item: None (none), an index, a name, a list of them,
    or a multi-hot vector of length K (tensor or array of 0/1 floats)."""
    if value is None:
        return ()
    if _is_tensor(value):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            value = value.item()
        elif value.ndim == 1 and len(value) == len(classes) and value.dtype != object and len(classes) > 1 \
                and set(np.unique(value).tolist()) <= {0, 1}:
            return tuple(int(i) for i in np.flatnonzero(value))
        else:
            value = value.tolist()
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(sorted({_label_index(v, classes, where) for v in value}))
    return (_label_index(value, classes, where),)


def _boxes(value, classes, where: str) -> tuple[Box, ...]:
    out = []
    for b in value or []:
        if isinstance(b, dict):
            label, coords = b.get("label"), b.get("box")
        elif isinstance(b, (list, tuple)) and len(b) == 2:
            label, coords = b
        else:
            label, coords = None, None
        if not (isinstance(coords, (list, tuple, np.ndarray)) and len(coords) == 4):
            raise DatasetError(f"{where}: box {b!r} is malformed; expected (label, [x_min, y_min, x_max, y_max]) or "
                               "{\"label\": …, \"box\": [x_min, y_min, x_max, y_max]}")
        out.append(Box(_label_index(label, classes, where), *(float(v) for v in coords)))
    return tuple(out)


def _mask(value, labels: tuple[int, ...], shape, where: str) -> np.ndarray | None:
    if value is None:
        return None
    m = value.detach().cpu().numpy() if _is_tensor(value) else np.asarray(value)
    if m.shape != shape:
        raise DatasetError(f"{where}: mask of shape {m.shape}; expected {shape}, the image's (H, W)")
    if m.dtype == bool:  # the object of the item's one ground-truth label
        if len(labels) != 1:
            raise DatasetError(f"{where}: a True/False mask needs exactly one ground-truth label (the item has "
                               f"{len(labels)}); give a label map instead (0 background, 1 + class index)")
        return np.where(m, labels[0] + 1, 0).astype(np.uint8)
    if m.size and (m.min() < 0 or m.max() > 255 or not np.issubdtype(m.dtype, np.integer)):
        raise DatasetError(f"{where}: mask values must be integers 0 (background) and 1 + class index ≤ 255")
    return m.astype(np.uint8)


@dataclass(frozen=True)
class Item:
    """One in-memory item before conversion (what the user handed over)."""

    image: Any
    labels: Any = None
    boxes: Any = None
    mask: Any = None
    id: str | None = None
    source: str = ""


def to_sample(item: Item, classes: Sequence[str], where: str, default_id: str) -> Sample:
    image = to_rgb_array(item.image, where)
    labels = label_set(item.labels, classes, where)
    boxes = _boxes(item.boxes, classes, where)
    h, w = image.shape[:2]
    check_boxes(boxes, w, h, where)
    mask = _mask(item.mask, labels, (h, w), where)
    labels = tuple(sorted(set(labels) | {b.label for b in boxes}))
    return Sample(str(item.id) if item.id is not None else default_id, image, labels, boxes, mask,
                  source=item.source or default_id)


def sample_digest(s: Sample) -> bytes:
    """Content hash of one converted item (what it holds, not how it was handed over)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(s.id.encode())
    h.update(repr((s.image.shape, s.labels, [(b.label, *b.as_list()) for b in s.boxes])).encode())
    h.update(s.image.tobytes())
    if s.mask is not None:
        h.update(s.mask.tobytes())
    return h.digest()


class MemoryDataset:
    """Items in memory, as the runner's dataset protocol (``classes``, ``len``, ``[i]``,
    ``identity()``).

    ``start`` lets an open-ended run hold only the items being appended: positions
    ``start … start + len(items) − 1`` are these items (earlier ones are already committed and
    not kept), and ``previous`` is the identity hash of the run before them, so the hash covers
    every item ever appended.
    """

    def __init__(self, classes: Sequence[str], items: Sequence[Item], *, start: int = 0, previous: str = "",
                 where: Callable[[int], str] | None = None):
        self.classes = [str(c) for c in classes]
        self._items = list(items)
        self.start = int(start)
        self._where = where or (lambda i: f"images[{i}]")
        width = len(str(max(self.start + len(self._items) - 1, 0)))
        self._ids = [f"{self.start + k:0{width}d}" for k in range(len(self._items))]
        h = hashlib.sha256(previous.encode())
        seen: dict[str, int] = {}
        self.sizes = []
        for k, it in enumerate(self._items):
            s = self._convert(k)  # every item checked now: one line naming the bad one, before any work
            if s.id in seen:
                raise DatasetError(f"{self._where(k)}: id {s.id!r} is used twice (also {self._where(seen[s.id])}); "
                                   "expected unique ids")
            seen[s.id] = k
            self.sizes.append(s.image.shape[:2])
            h.update(sample_digest(s))
        self.digest = h.hexdigest()[:16]

    def _convert(self, k: int) -> Sample:
        return to_sample(self._items[k], self.classes, self._where(k), self._ids[k])

    def __len__(self) -> int:
        return self.start + len(self._items)

    def __getitem__(self, index: int) -> Sample:
        k = int(index) - self.start
        if not 0 <= k < len(self._items):
            raise DatasetError(f"item {index} is not held in memory (items {self.start}–{len(self) - 1} are)")
        return self._convert(k)

    def identity(self) -> dict:
        return {"kind": KIND, "path": "", "sha256": self.digest, "n_items": len(self)}


def as_items(images, *, labels=None, boxes=None, masks=None, ids=None) -> list[Item]:
    """The user's images (see the module doc) as :class:`Item` objects, with the per-image
    ``labels``/``boxes``/``masks``/``ids`` lists (each as long as the images, or None)."""
    if _is_torch_dataset(images):
        if labels is not None:
            raise DatasetError("labels= was given with a torch Dataset; its items already carry (image, label)")
        images, labels = _unpack_dataset(images)
    elif _is_tensor(images):
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise DatasetError(f"images is a tensor of shape {tuple(images.shape)}; expected a batch (N, C, H, W) with "
                               "C = 1 or 3 (pixels in [0, 1])")
        images = list(images)
    elif isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise DatasetError(f"images is an array of shape {images.shape}; expected a batch (N, H, W, C) "
                               "or a list of images")
        images = list(images)
    elif isinstance(images, (Image.Image, str, bytes)) or not hasattr(images, "__len__"):
        raise DatasetError(f"images is {type(images).__name__}; expected a list of PIL images or arrays, a tensor "
                           "batch (N, C, H, W) or a torch Dataset of (image, label)")
    images = list(images)
    if not images:
        raise DatasetError("images is empty; expected at least one image")
    n = len(images)
    for name, values in (("labels", labels), ("boxes", boxes), ("masks", masks), ("ids", ids)):
        if values is not None and len(values) != n:
            raise DatasetError(f"{name} has {len(values)} entries for {n} images; expected one per image")
    return [Item(im, None if labels is None else labels[i], None if boxes is None else boxes[i],
                 None if masks is None else masks[i], None if ids is None else ids[i]) for i, im in enumerate(images)]


def _unpack_dataset(ds) -> tuple[list, list]:
    try:
        n = len(ds)
    except TypeError as e:
        raise DatasetError("the torch Dataset has no len(); expected a map-style Dataset of (image, label)") from e
    images, labels = [], []
    for i in range(n):
        item = ds[i]
        if isinstance(item, (tuple, list)) and len(item) >= 2:
            images.append(item[0])
            labels.append(item[1])
        else:
            images.append(item)
            labels.append(None)
    return images, labels
