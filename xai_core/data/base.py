"""Samples, the dataset protocol and preprocessing to the model's input size."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DatasetError
from .spec import RESIZE_POLICIES  # noqa: F401  (defined with the torch-free configuration)


@dataclass(frozen=True)
class Box:
    """An object box in pixels: x = column, y = row, ``x_max``/``y_max`` exclusive."""

    label: int
    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def scaled(self, sx: float, sy: float) -> "Box":
        return Box(self.label, self.x_min * sx, self.y_min * sy, self.x_max * sx, self.y_max * sy)

    def as_list(self) -> list[float]:
        return [self.x_min, self.y_min, self.x_max, self.y_max]


@dataclass(frozen=True)
class Sample:
    """One dataset item.

    image: (H, W, 3) uint8 RGB at source resolution.
    labels: ground-truth class indices (a set, sorted).
    boxes: object boxes in source pixels.
    mask: optional (H, W) uint8 label map, 0 = background, 1 + class index = object.
    """

    id: str
    image: np.ndarray
    labels: tuple[int, ...]
    boxes: tuple[Box, ...] = ()
    mask: np.ndarray | None = None
    source: str = ""


class Dataset(Protocol):
    classes: list[str]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...

    def identity(self) -> dict: ...


def read_image(path: Path, item: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB, or a one-line DatasetError naming ``item``."""
    if not path.is_file():
        raise DatasetError(f"{item}: image file {str(path)!r} does not exist")
    try:
        with Image.open(path) as im:
            return to_rgb8(im)
    except Image.DecompressionBombError as e:
        raise DatasetError(f"{item}: image file {str(path)!r} is too large to decode safely ({e}); expected at most "
                           f"{Image.MAX_IMAGE_PIXELS:,} pixels (resize it first)") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DatasetError(f"{item}: image file {str(path)!r} is corrupt or not an image ({e.__class__.__name__})") from e


# Modes whose values exceed 8 bits: PIL's convert("RGB") clips them to 255 (all white) instead
# of scaling, so they are scaled here. 16-bit PNG greyscale opens as "I;16*" or "I".
_WIDE = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535, "I": 65535}


def to_rgb8(im: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB of any PIL image; 16-bit greyscale scaled to 8 bits (not clipped)."""
    if im.mode in _WIDE:
        a = np.asarray(im).astype(np.float64)
        full = _WIDE[im.mode]
        if im.mode == "I" and a.size and (a.min() < 0 or a.max() > full):
            raise ValueError(f"32-bit integer image with values {a.min():.0f}–{a.max():.0f}")
        g = np.rint(a * (255.0 / full)).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if im.mode == "F":
        raise ValueError("floating-point image; expected 8- or 16-bit")
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def read_mask(path: Path, item: str, shape: tuple[int, int]) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"{item}: mask file {str(path)!r} does not exist")
    try:
        with Image.open(path) as im:
            mask = np.asarray(im)
        if mask.size and (mask.min() < 0 or mask.max() > 255):
            raise DatasetError(f"{item}: mask {str(path)!r} holds values up to {mask.max()}; expected a label map "
                               "of 0 (background) and 1 + class index ≤ 255")
        mask = mask.astype(np.uint8)
    except Image.DecompressionBombError as e:
        raise DatasetError(f"{item}: mask file {str(path)!r} is too large to decode safely ({e})") from e
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DatasetError(f"{item}: mask file {str(path)!r} is corrupt ({e.__class__.__name__})") from e
    if mask.ndim != 2 or mask.shape != shape:
        raise DatasetError(
            f"{item}: mask {str(path)!r} has shape {mask.shape}; expected a single-channel {shape} label map"
        )
    return mask


def check_boxes(boxes: Sequence[Box], width: int, height: int, item: str) -> None:
    for b in boxes:
        if not (0 <= b.x_min < b.x_max <= width and 0 <= b.y_min < b.y_max <= height):
            raise DatasetError(
                f"{item}: box {b.as_list()} lies outside the {width}x{height} image; expected "
                f"0 <= x_min < x_max <= {width} and 0 <= y_min < y_max <= {height} ([x_min, y_min, x_max, y_max] in pixels)"
            )


@dataclass
class PreparedBatch:
    """A batch resized to the model input size (H, W).

    pixels: (N, C, H, W) float32 in [0, 1], C = the model's channels (1: luma, ITU-R 601-2 as
    PIL's "L"); display: (N, H, W, 3) uint8 (what the dashboard shows: pixel space, never the
    normalised tensor; for a 1-channel model the grey image it sees, repeated 3 times); boxes
    transformed like the image (clipped to it; a box cropped away entirely is dropped); masks
    resized with nearest neighbour.
    """

    indices: list[int]
    samples: list[Sample]
    pixels: torch.Tensor
    display: np.ndarray
    boxes: list[tuple[Box, ...]]
    masks: list[np.ndarray | None]




def _geometry(sh: int, sw: int, h: int, w: int, policy: str):
    """(scaled height, scaled width, top, left) of the source resized before the crop."""
    if policy == "center_crop":
        s = max(h / sh, w / sw)
        rh, rw = max(h, round(sh * s)), max(w, round(sw * s))
        return rh, rw, (rh - h) // 2, (rw - w) // 2
    return h, w, 0, 0


def _transform_box(b: Box, sx: float, sy: float, top: int, left: int, h: int, w: int) -> Box | None:
    x0, x1 = min(max(b.x_min * sx - left, 0.0), w), min(max(b.x_max * sx - left, 0.0), w)
    y0, y1 = min(max(b.y_min * sy - top, 0.0), h), min(max(b.y_max * sy - top, 0.0), h)
    return Box(b.label, x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def prepare_batch(dataset: Dataset, indices: Sequence[int], size: tuple[int, int], *, channels: int = 3,
                  resize: str = "stretch") -> PreparedBatch:
    """Read ``indices`` of ``dataset`` and bring them to ``size`` with the ``resize`` policy,
    as ``channels``-channel pixels (3: RGB, 1: grey)."""
    if resize not in RESIZE_POLICIES:
        raise DatasetError(f"resize policy {resize!r}; expected one of {RESIZE_POLICIES}")
    if channels not in (1, 3):
        raise DatasetError(f"{channels} input channels; expected 1 (grey) or 3 (RGB)")
    h, w = size
    samples, display, boxes, masks = [], [], [], []
    for i in indices:
        s = dataset[i]
        sh, sw = s.image.shape[:2]
        rh, rw, top, left = _geometry(sh, sw, h, w, resize)
        im = s.image if (sh, sw) == (rh, rw) else np.asarray(Image.fromarray(s.image).resize((rw, rh), Image.BILINEAR))
        im = im[top: top + h, left: left + w]
        if channels == 1:
            im = np.repeat(np.asarray(Image.fromarray(np.ascontiguousarray(im)).convert("L"))[:, :, None], 3, axis=2)
        sx, sy = rw / sw, rh / sh
        samples.append(s)
        display.append(im)
        boxes.append(tuple(b for b in (_transform_box(b, sx, sy, top, left, h, w) for b in s.boxes) if b is not None))
        m = s.mask
        if m is not None and m.shape != (rh, rw):
            m = np.asarray(Image.fromarray(m).resize((rw, rh), Image.NEAREST))
        masks.append(None if m is None else np.ascontiguousarray(m[top: top + h, left: left + w]))
    disp = np.stack(display) if display else np.zeros((0, h, w, 3), np.uint8)
    pixels = torch.from_numpy(disp[..., :channels]).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
    return PreparedBatch(list(indices), samples, pixels, disp, boxes, masks)


def box_span(lo: float, hi: float, n: int) -> tuple[int, int]:
    """Pixels [start, stop) of an axis of ``n`` pixels whose centre i + 0.5 lies in [lo, hi):
    i + 0.5 ≥ lo ⇔ i ≥ ⌈lo − 0.5⌉, and i + 0.5 < hi ⇔ i < ⌈hi − 0.5⌉. A box covering no
    pixel centre spans no pixel (start == stop)."""
    start = min(max(int(np.ceil(lo - 0.5)), 0), n)
    return start, min(max(int(np.ceil(hi - 0.5)), start), n)


def object_mask(boxes: Sequence[Box], mask: np.ndarray | None, label: int, size: tuple[int, int]) -> np.ndarray | None:
    """(H, W) bool: where objects of ``label`` are, from the mask if any, else from boxes: a
    pixel (row r, column c) is inside a box when its centre (r + 0.5, c + 0.5) is, minima
    inclusive and maxima exclusive (:func:`box_span`).

    None when the sample carries no localisation for that label, or when its boxes cover no
    pixel centre (nothing to point at: localisation does not apply).
    """
    if mask is not None:
        m = mask == (label + 1)
        if m.any():
            return m
    sel = [b for b in boxes if b.label == label]
    if not sel:
        return None
    out = np.zeros(size, dtype=bool)
    for b in sel:
        (r0, r1), (c0, c1) = box_span(b.y_min, b.y_max, size[0]), box_span(b.x_min, b.x_max, size[1])
        out[r0:r1, c0:c1] = True
    return out if out.any() else None
