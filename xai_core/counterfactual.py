"""Hierarchical occlusion counterfactuals (MindSpore's HOC, ANCHORS.md §4).

For an image x and a label t with p(t | x) ≥ threshold: start from a blurred copy of x, and
find a small set of square windows which, pasted back from x, bring p(t) back to at least
the threshold. Windows have side = short side / 2 in the first layer and halve in each next
layer (at most ``layers``, never below ``min_side`` px); a layer searches only inside the
windows chosen by the layer above, so the result is a tree of ever smaller display areas.
Each layer is found greedily: add the window that raises p(t) most, until p(t) ≥ threshold.

Everything is batched: at each greedy step the candidate windows of *all* unfinished
(image, label) pairs are evaluated together in chunks of ``batch_size``, and identical
composites (the labels of one image share the first step) are evaluated once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .blur import gaussian_blur
from .devices import model_device, to_device, to_host
from .errors import ExplainerError

Box = tuple[int, int, int, int]  # (x_min, y_min, x_max, y_max), pixel edges, max exclusive


def default_blur_sigma(height: int, width: int) -> float:
    """σ = short side / 12 (≈ 5 px at 64 px, 19 px at 224 px): strong enough to erase strokes
    and textures while keeping the colour layout, so the blurred copy is a plausible image."""
    return max(1.0, min(height, width) / 12.0)


@dataclass(frozen=True)
class Counterfactual:
    """Result for one (image, label) pair.

    prob: p(label) on the original image; blurred_prob: on the fully blurred copy.
    layers: one dict per layer found, outermost first::

        {"side": int, "stride": int, "boxes": [[x_min, y_min, x_max, y_max], ...], "prob": float}

    ``boxes`` are in the greedy order of selection (pixel edges, max exclusive) and ``prob``
    is p(label) of the blurred image with exactly those boxes pasted back. A layer is only
    listed if its boxes reach the threshold; layer k + 1 boxes lie inside layer k boxes.
    ``layers`` is empty when the blurred image alone keeps the label (blurred_prob ≥
    threshold: no window is needed) or when even the first layer failed (``found`` False).
    passes: model passes this pair used (shared first-step passes counted for each label).
    """

    label: int
    prob: float
    blurred_prob: float
    layers: list[dict] = field(default_factory=list)
    found: bool = True
    passes: int = 0

    def to_dict(self) -> dict:
        return {"label": self.label, "prob": self.prob, "blurred_prob": self.blurred_prob,
                "layers": self.layers, "found": self.found, "passes": self.passes}


def layer_sides(height: int, width: int, layers: int = 3, min_side: int = 4) -> list[int]:
    """Window sides per layer: short side // 2, halved each layer, ≥ ``min_side``
    (MindSpore stops below 28 px at 224 px input — short side / 8, i.e. three layers)."""
    sides, s = [], min(height, width) // 2
    while len(sides) < layers and s >= max(1, min_side):
        sides.append(s)
        s //= 2
    return sides


def _positions(lo: int, hi: int, side: int, stride: int) -> list[int]:
    """Window starts in [lo, hi − side] every ``stride`` px, plus the last one flush with hi,
    so the windows always reach the far edge."""
    last = hi - side
    if last < lo:
        return []
    out = list(range(lo, last + 1, stride))
    if out[-1] != last:
        out.append(last)
    return out


def candidate_windows(region: Box, side: int, stride: int) -> list[Box]:
    x0, y0, x1, y1 = region
    return [(x, y, x + side, y + side) for y in _positions(y0, y1, side, stride)
            for x in _positions(x0, x1, side, stride)]


def _tiles(region: Box, side: int) -> int:
    """How many windows tile ``region``: pasting them all restores the whole region, so a
    layer never needs more (the greedy cap)."""
    x0, y0, x1, y1 = region
    return math.ceil((x1 - x0) / side) * math.ceil((y1 - y0) / side)


@dataclass
class _Search:
    """Mutable state of one (image, label) pair during the search."""

    image: int
    label: int
    prob: float
    blurred_prob: float
    sides: list[int]
    shape: tuple[int, int]
    layer: int = 0
    regions: list[Box] = field(default_factory=list)
    candidates: list[Box] = field(default_factory=list)
    chosen: list[Box] = field(default_factory=list)
    cap: int = 0
    current: float = 0.0
    mask: torch.Tensor | None = None
    layers: list[dict] = field(default_factory=list)
    done: bool = False
    passes: int = 0

    def start_layer(self, regions: list[Box]) -> None:
        side = self.sides[self.layer]
        stride = max(1, side // 5)  # MindSpore: stride = side / 5
        seen: dict[Box, None] = {}
        for r in regions:
            for c in candidate_windows(r, side, stride):
                seen[c] = None
        self.regions, self.candidates, self.chosen = regions, list(seen), []
        self.cap = sum(_tiles(r, side) for r in regions)
        self.current = self.blurred_prob
        self.mask = torch.zeros(self.shape, dtype=torch.bool)


def windows_mask(shape: tuple[int, int], boxes) -> torch.Tensor:
    """(H, W) bool, True inside the windows ``[(x0, y0, x1, y1)]`` (maxima exclusive): what a
    layer keeps sharp; the dashboard draws the same composite from the stored boxes."""
    m = torch.zeros(shape, dtype=torch.bool)
    for x0, y0, x1, y1 in boxes:
        m[y0:y1, x0:x1] = True
    return m


def _covered(mask: torch.Tensor, box: Box) -> bool:
    x0, y0, x1, y1 = box
    return bool(mask[y0:y1, x0:x1].all())


@torch.no_grad()
def hierarchical_occlusion(model, images: torch.Tensor, targets, *, threshold: float = 0.5,
                           layers: int = 3, min_side: int = 4, blur_sigma: float | None = None,
                           batch_size: int = 64, probs: torch.Tensor | None = None
                           ) -> list[list[Counterfactual | None]]:
    """Hierarchical occlusion counterfactuals for the labels of each image.

    model: :class:`~xai_core.models.ClassifierHandle`; images: (N, 3, H, W) float32 in [0, 1];
    targets: N lists of class indices (e.g. the explained labels of each image).
    threshold: p(label) to keep (MindSpore: 0.5, fixed there). layers: at most this many
    layers (sides short/2, short/4, …, ≥ ``min_side`` px). blur_sigma: of the Gaussian blur
    that hides the image (None: :func:`default_blur_sigma`). probs: (N, K) probabilities of
    the originals if already known (saves N passes).

    Returns, per image, a list aligned with ``targets[i]``: a :class:`Counterfactual`, or None
    where p(label | original) < threshold (nothing to keep).

    Cost: one pass per image for the blurred copies (+1 without ``probs``), then per greedy
    step one pass per candidate window of each unfinished pair — about 49 candidates per
    step at stride side / 5 — so a label needing k₁, k₂, k₃ windows in its three layers
    costs about 49 · (k₁ + k₂ + k₃) passes (layer 3 at 64 px has 81 candidates per parent).
    Measured on the 64 px demo CNN: 340–790 passes per searched label, 500 on average.
    """
    if images.ndim != 4 or len(targets) != images.shape[0]:
        raise ExplainerError(
            f"counterfactual: images {tuple(images.shape)} and {len(targets)} target lists do not match; "
            "expected (N, 3, H, W) and N lists of labels"
        )
    if not 0.0 < threshold < 1.0:
        raise ExplainerError(f"counterfactual: threshold is {threshold}; expected 0 < threshold < 1")
    n, _, h, w = images.shape
    images = to_device(images.detach().float(), model_device(model))
    sides = layer_sides(h, w, layers, min_side)
    if not sides:
        raise ExplainerError(f"counterfactual: images of {h}×{w} px are too small for windows ≥ {min_side} px")
    sigma = default_blur_sigma(h, w) if blur_sigma is None else float(blur_sigma)
    blurred = gaussian_blur(images, sigma)
    p_orig = to_host(model.predict(images, batch_size=batch_size) if probs is None
                     else torch.as_tensor(probs, dtype=torch.float32))
    p_blur = to_host(model.predict(blurred, batch_size=batch_size))

    results: list[list[Counterfactual | None]] = [[None] * len(t) for t in targets]
    searches: list[tuple[int, int, _Search]] = []
    for i, labs in enumerate(targets):
        for j, lab in enumerate(labs):
            lab = int(lab)
            p0, pb = float(p_orig[i, lab]), float(p_blur[i, lab])
            if p0 < threshold:
                continue
            if pb >= threshold:  # the blurred image alone keeps the label: nothing to show
                results[i][j] = Counterfactual(lab, p0, pb, [], True, 0)
                continue
            s = _Search(i, lab, p0, pb, sides, (h, w))
            s.start_layer([(0, 0, w, h)])
            searches.append((i, j, s))

    while True:
        active = [s for _, _, s in searches if not s.done]
        if not active:
            break
        # Unique composites: (image, frozenset(boxes)) → slot; the labels of one image share
        # their first step, whose composites are identical.
        slots: dict[tuple, int] = {}
        recipes: list[tuple[int, list[Box]]] = []
        plans: list[tuple[_Search, list[Box], list[int]]] = []
        for s in active:
            cands = [c for c in s.candidates if not _covered(s.mask, c)]
            if not cands or len(s.chosen) >= s.cap:
                s.done = True  # this layer failed; the layers found so far stand
                continue
            idx = []
            for c in cands:
                key = (s.image, frozenset(s.chosen) | {c})
                if key not in slots:
                    slots[key] = len(recipes)
                    recipes.append((s.image, [*s.chosen, c]))
                idx.append(slots[key])
            plans.append((s, cands, idx))
        if not plans:
            continue
        p_all = _evaluate(model, images, blurred, recipes, batch_size)
        for s, cands, idx in plans:
            p = p_all[idx, s.label]
            s.passes += len(cands)
            best = int(torch.argmax(p))
            s.chosen.append(cands[best])
            s.current = float(p[best])
            c = cands[best]
            s.mask[c[1]:c[3], c[0]:c[2]] = True
            if s.current >= threshold:
                side = s.sides[s.layer]
                s.layers.append({"side": side, "stride": max(1, side // 5),
                                 "boxes": [list(b) for b in s.chosen], "prob": s.current})
                s.layer += 1
                if s.layer < len(s.sides):
                    s.start_layer(list(s.chosen))
                else:
                    s.done = True
    for i, j, s in searches:
        results[i][j] = Counterfactual(s.label, s.prob, s.blurred_prob, s.layers, bool(s.layers), s.passes)
    return results


def _evaluate(model, images, blurred, recipes, batch_size) -> torch.Tensor:
    """Probabilities (R, K) of each recipe's composite: ``blurred[image]`` with ``boxes``
    pasted back from ``images[image]``; built chunk by chunk, never all at once. The window
    masks are drawn on the host and moved per chunk; the probabilities come back once per
    greedy step, after its last pass (the search is host code)."""
    h, w = images.shape[2:]
    out = []
    for s in range(0, len(recipes), batch_size):
        chunk = recipes[s:s + batch_size]
        idx = torch.as_tensor([r[0] for r in chunk])
        m = to_device(torch.stack([windows_mask((h, w), r[1]) for r in chunk]).unsqueeze(1), images.device)
        x = torch.where(m, images[idx], blurred[idx])
        out.append(model.probs(x).float())
    return to_host(torch.cat(out))
