"""Image segmentations for the region methods (LIME and KernelSHAP superpixels, XRAI regions)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage
from skimage import segmentation
from skimage.morphology import disk
from skimage.transform import resize

from .base import REFERENCE_SIDE, scaled

SUPERPIXELS = ("slic", "quickshift")


def check_superpixel_params(samples: int, segmentation: str, segments: int) -> str | None:
    """The parameter checks shared by the superpixel samplers (LIME, KernelSHAP)."""
    if samples < 2:
        return f"samples is {samples}; expected ≥ 2"
    if segmentation not in SUPERPIXELS:
        return f"segmentation is {segmentation!r}; expected one of {SUPERPIXELS}"
    if segments < 0:
        return f"segments is {segments}; expected ≥ 0 (0 = auto)"
    return None


def auto_segments(height: int, width: int) -> int:
    """Default superpixel count: ~100 at 224×224 (one per ~500 px, within ANCHORS' 50–200),
    at least 16 on small images."""
    return int(min(200, max(16, round(height * width / 500))))


def superpixels(image: torch.Tensor, method: str = "slic", n_segments: int = 0) -> np.ndarray:
    """(C, H, W) float32 pixels in [0, 1] → (H, W) int64 labels 0 … S−1.

    slic: Achanta et al. 2012, compactness 10 (scikit-image's default), ``n_segments`` the
    target count (0 = :func:`auto_segments`). quickshift: Vedaldi & Soatto 2008 as in LIME's
    image explainer (ratio 0.2); its kernel size is set from the target count so that the mean
    superpixel area ≈ H·W / n_segments (LIME's kernel 4 gives ~100 segments at 224 px).
    SLIC falls back to higher compactness when it returns fewer than a third of the target.
    """
    arr = image.detach().cpu().permute(1, 2, 0).double().numpy()
    h, w = arr.shape[:2]
    n = n_segments or auto_segments(h, w)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if method == "slic":
        # On textureless noise SLIC's connectivity step can merge everything into one segment;
        # a higher compactness (more grid-like superpixels) then restores the requested count.
        for compactness in (10.0, 100.0, 1000.0):
            seg = segmentation.slic(arr, n_segments=n, compactness=compactness, start_label=0, channel_axis=-1)
            if len(np.unique(seg)) >= max(2, n // 3):
                break
    elif method == "quickshift":
        kernel = max(1.0, math.sqrt(h * w / n) / 5.0)
        seg = segmentation.quickshift(arr, kernel_size=kernel, max_dist=50.0 * kernel, ratio=0.2,
                                      rng=0)
    else:
        raise ValueError(f"segmentation {method!r}; expected one of {SUPERPIXELS}")
    return np.unique(seg, return_inverse=True)[1].reshape(h, w).astype(np.int64)


# XRAI's segmentation (Kapishnikov et al. 2019, §3; PAIR saliency's defaults): Felzenszwalb at
# six scales on the image min-max scaled to [−1, 1] at 224×224 px, each segment dilated.
FELZENSZWALB_SCALES = (50, 100, 150, 250, 500, 1200)
FELZENSZWALB_SIGMA = 0.8
FELZENSZWALB_MIN_SIZE = 150


def felzenszwalb_regions(image: torch.Tensor, scales=FELZENSZWALB_SCALES, dilation: int = 0,
                         work_side: int = REFERENCE_SIDE):
    """(C, H, W) pixels → 0/1 scipy.sparse CSC matrix (S, H·W) of overlapping regions.

    As PAIR, every image is resized to a square of ``work_side`` px (224 there) so that the
    scales mean the same on any input, and the labels are resized back (nearest). A smaller
    ``work_side`` is cheaper and coarser; Felzenszwalb's ``scale`` and ``min_size`` (both in
    pixels) are scaled by the area ratio to 224² and ``sigma`` by the side ratio, so they keep
    their meaning. dilation: disk radius in image pixels (0 = auto, 5 px at 224 px as in PAIR).
    """
    from scipy import sparse

    arr = image.detach().cpu().permute(1, 2, 0).double().numpy()
    h, w = arr.shape[:2]
    lo, hi = arr.min(), arr.max()
    norm = (arr - lo) / (hi - lo) * 2.0 - 1.0 if hi > lo else np.zeros_like(arr)
    norm = resize(norm, (work_side, work_side), order=3, mode="constant", preserve_range=True,
                  anti_aliasing=True)
    side = work_side / REFERENCE_SIDE
    area = side * side
    radius = dilation or scaled(5, min(h, w))
    foot = disk(radius)
    rows, cols = [], []
    k = 0
    for scale in scales:
        seg = segmentation.felzenszwalb(norm, scale=scale * area, sigma=FELZENSZWALB_SIGMA * side,
                                        min_size=max(1, round(FELZENSZWALB_MIN_SIZE * area)), channel_axis=-1)
        if seg.shape != (h, w):
            seg = resize(seg, (h, w), order=0, preserve_range=True, mode="constant",
                         anti_aliasing=False).astype(np.int64)
        for sl, label in zip(ndimage.find_objects(seg + 1), range(seg.max() + 1)):
            if sl is None:
                continue
            # Dilate inside the bounding box grown by the radius: cheap even for many segments.
            y0, y1 = max(0, sl[0].start - radius), min(h, sl[0].stop + radius)
            x0, x1 = max(0, sl[1].start - radius), min(w, sl[1].stop + radius)
            crop = ndimage.binary_dilation(seg[y0:y1, x0:x1] == label, structure=foot)
            yy, xx = np.nonzero(crop)
            rows.append(np.full(yy.size, k))
            cols.append((yy + y0) * w + (xx + x0))
            k += 1
    rows = np.concatenate(rows)
    cols = np.concatenate(cols)
    return sparse.csc_matrix((np.ones(rows.size, dtype=np.float64), (rows, cols)), shape=(k, h * w))
