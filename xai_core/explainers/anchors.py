"""Anchors for images: a small set of superpixels that, kept, fixes the model's decision."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..blur import gaussian_blur
from ..counterfactual import default_blur_sigma
from . import register
from ._anchor_search import _Pool, _lucb_beta, kl_lower, kl_upper
from ._segments import SUPERPIXELS, superpixels
from .base import Explainer, image_digest, model_device, to_device, to_host

FILLS = ("blur", "mean", "constant")
# Accept an anchor when its mean precision ≥ `precision` and its lower confidence bound is
# within this margin of it (alibi's `epsilon_stop`, Ribeiro et al. 2018 §3.2).
_EPS_STOP = 0.05


@register
class Anchors(Explainer):
    """Anchor: the smallest set of superpixels keeping the decision with precision ≥ 0.95.

    Ribeiro, Singh & Guestrin, "Anchors: High-Precision Model-Agnostic Explanations", AAAI
    2018. Superpixels by SLIC (or quickshift); a perturbation keeps every anchor superpixel and replaces each
    other one with probability ``p_replace`` by the ``fill`` image; precision = P(decision on
    the perturbation equals the decision on the image). Anchors grow one superpixel at a time
    by a beam search whose best ``beam_size`` candidates per size are picked by KL-LUCB
    (Kaufmann & Kalyanakrishnan, COLT 2013) to tolerance ``tau`` at confidence 1 − ``delta``;
    the smallest size whose candidate passes the precision test wins. "Decision" is "label
    predicted" (p > 0.5 for sigmoid models, argmax for softmax), so labels the model does
    *not* predict get the anchor of that absence — usually empty.

    Cost per image: 1 + ``initial_samples`` passes, then each label's search asks for at most
    ``max_passes`` samples — 0 when the shared samples already show that the decision cannot
    change (the empty anchor), 100–1300 for a predicted label on the 64 px demo CNN (~32
    superpixels) — and labels asking for the same samples share them (see :class:`_Pool`).

    The map is a mask: 1.0 on the anchor's superpixels, 0 elsewhere. Per pair details
    (precision, coverage, superpixels, cost) are in ``last_details`` after each call and the
    segmentations in ``last_segments``.
    """

    name = "anchors"
    display_name = "Anchors"
    needs_gradients = False
    signed = False
    paper = "Ribeiro et al. 2018, AAAI, doi:10.1609/aaai.v32i1.11491"
    channel_reduction = "none"

    @dataclass(frozen=True)
    class Params:
        segments: int = 0  # superpixels wanted; 0: one per ~100 px, within [10, 60]
        segmentation: str = "slic"  # or "quickshift"
        precision: float = 0.95
        delta: float = 0.1
        tau: float = 0.15
        p_replace: float = 0.5  # alibi's p_sample
        draw_size: int = 16  # perturbations drawn per anchor per KL-LUCB step (alibi batch_size)
        initial_samples: int = 64  # unconstrained perturbations per image, shared by its labels
        beam_size: int = 2
        max_anchor_size: int = 0  # 0: no limit
        max_passes: int = 3000  # samples one label's search may ask for; then the best so far
        fill: str = "blur"  # "blur" | "mean" (superpixel mean colour) | "constant" (fill_value)
        fill_value: float = 0.0
        seed: int = 0

        def check(self) -> str | None:
            if self.segmentation not in SUPERPIXELS:
                return f"segmentation is {self.segmentation!r}; expected one of {SUPERPIXELS}"
            if self.fill not in FILLS:
                return f"fill is {self.fill!r}; expected one of {FILLS}"
            if not 0.5 <= self.precision < 1.0:
                return f"precision is {self.precision}; expected 0.5 ≤ precision < 1"
            if not (0 < self.delta < 1 and 0 < self.tau < 1 and 0 < self.p_replace < 1):
                return "delta, tau and p_replace must lie in (0, 1)"
            if min(self.draw_size, self.beam_size, self.max_passes) < 1 or self.initial_samples < 0:
                return "draw_size, beam_size and max_passes must be ≥ 1 and initial_samples ≥ 0"
            return None

    uses_host_pixels = True  # superpixels and the sample streams' seeds come from the content
    # Registry-driven tests and smoke runs: every code path, a few hundred passes at most.
    smoke_params = {"max_passes": 200, "initial_samples": 16, "draw_size": 8}

    def __init__(self, params=None, *, instance_name=None):
        super().__init__(params, instance_name=instance_name)
        # One dict per (image, label) / one segmentation per image of the last explain or
        # explain_grouped call, in order (keys: see `result` in :meth:`search`).
        self.last_details: list[dict] = []
        self.last_segments: list[np.ndarray] = []

    # ---- per image set-up ---------------------------------------------------------------
    def segment(self, image: torch.Tensor) -> np.ndarray:
        """(3, H, W) in [0, 1] → (H, W) int64 superpixel ids 0 … F − 1.

        Fewer, larger superpixels than LIME's (alibi's example uses 15 at 299 px): the search
        cost grows with their number, and an anchor of a few large parts reads better."""
        h, w = image.shape[1:]
        n = self.params.segments or int(np.clip(round(h * w / 100), 10, 60))
        return superpixels(image, self.params.segmentation, n)

    def fill_image(self, image: torch.Tensor, seg: np.ndarray) -> torch.Tensor:
        """What a replaced superpixel shows. Default "blur": the Gaussian-blurred copy the
        counterfactual uses too, so "removed" means one thing across the dashboard — detail
        erased, colours kept (a constant fill draws strong edges a CNN may read as features;
        Ribeiro et al. allow either). A model that reads colour alone is blind to it: use
        "constant" there."""
        if self.params.fill == "blur":
            return gaussian_blur(image[None], default_blur_sigma(*image.shape[1:]))[0]
        if self.params.fill == "constant":
            return torch.full_like(image, self.params.fill_value)
        s = torch.as_tensor(seg, device=image.device).view(-1)
        flat = image.reshape(image.shape[0], -1)
        n = int(seg.max()) + 1  # sizes from the host segmentation: no device round trip
        sums = torch.zeros(image.shape[0], n, device=image.device).index_add_(1, s, flat)
        counts = to_device(torch.from_numpy(np.bincount(np.asarray(seg).reshape(-1), minlength=n)), image.device)
        return (sums / counts.clamp(min=1))[:, s].view_as(image)

    # ---- the search of one (image, label): a generator of sample requests ----------------
    def search(self, pool: _Pool, label: int, decision: bool):
        """The anchor search of one (image, label), as a generator: it yields lists of
        (anchor, length) requests — "stream ``anchor`` must hold ``length`` samples" — which the
        driver serves (drawing and predicting what is missing) before resuming it. Returns the
        details dict."""
        P = self.params
        n_features = pool.n_features
        spent = 0
        view: dict[frozenset, int] = {frozenset(): P.initial_samples}

        def stats(a: frozenset):
            return pool.stats(a, view, label, decision)

        def draw(anchors):
            nonlocal spent
            for a in anchors:
                view[a] = view.get(a, 0) + P.draw_size
                spent += P.draw_size
            return [(a, view[a]) for a in anchors]

        def bounds(n, pos, level):
            mean = pos / max(n, 1)
            return mean, float(kl_lower(mean, level / max(n, 1))), float(kl_upper(mean, level / max(n, 1)))

        def verify(a):
            # Ribeiro et al. §3.2 / alibi: sample until the precision is decided either way.
            beta = math.log(1.0 / P.delta)
            while True:
                n, pos = stats(a)
                mean, lb, ub = bounds(n, pos, beta)
                undecided = (n == 0 or (mean >= P.precision and lb < P.precision - _EPS_STOP)
                             or (mean < P.precision and ub >= P.precision + _EPS_STOP))
                if not undecided or spent + P.draw_size > P.max_passes:
                    return mean, lb, n, n > 0 and mean >= P.precision and lb >= P.precision - _EPS_STOP
                yield draw([a])

        def result(a, mean, lb, n, found):
            # Coverage is exact: superpixels are kept independently with prob 1 − p_replace,
            # so P(perturbation satisfies A) = (1 − p_replace)^|A|. alibi estimates the same
            # number from `coverage_samples` draws, with noise and no other information: with
            # independent draws all anchors of one size cover equally.
            return {"label": label, "predicted": decision, "anchor": sorted(int(f) for f in a),
                    "precision": float(mean), "precision_lb": float(lb), "n_samples": int(n),
                    "coverage": float((1.0 - P.p_replace) ** len(a)), "found": bool(found),
                    "passes": spent, "segments": n_features}

        mean, lb, n, ok = yield from verify(frozenset())
        if ok:
            return result(frozenset(), mean, lb, n, True)
        tried = [(mean, frozenset(), lb, n)]
        beam = [frozenset()]
        for size in range(1, (P.max_anchor_size or n_features) + 1):
            cands = list(dict.fromkeys(a | {f} for a in beam for f in range(n_features) if f not in a))
            if not cands:
                break
            ns, pos = np.array([stats(a) for a in cands], dtype=float).reshape(-1, 2).T
            empty = [i for i in range(len(cands)) if ns[i] == 0]
            if empty and spent + P.draw_size * len(empty) <= P.max_passes:
                yield draw([cands[i] for i in empty])
                for i in empty:
                    ns[i], pos[i] = stats(cands[i])
            top = min(P.beam_size, len(cands))
            # Arms tied near the beam's edge would take ~β/ε² samples each to separate; the
            # beam is only a heuristic (the guarantee comes from `verify`), so arm
            # identification may spend at most a quarter of the remaining budget per size.
            lucb_end = spent + max(2 * P.draw_size, (P.max_passes - spent) // 4)
            t = 1
            while len(cands) > top:  # KL-LUCB: separate the best `top` arms to within tau
                means = pos / np.maximum(ns, 1)
                order = np.argsort(means, kind="stable")
                best, rest = order[-top:], order[:-top]
                level = _lucb_beta(len(cands), t, P.delta) / np.maximum(ns, 1)
                ub = kl_upper(means[rest], level[rest])
                lb_ = kl_lower(means[best], level[best])
                ut, lt = rest[int(np.argmax(ub))], best[int(np.argmin(lb_))]
                arms = list(dict.fromkeys((ut, lt)))
                # Only the smallest passing anchor matters, not the exact ranking: stop as soon
                # as the leader passes the precision test at a Bonferroni level over the arms
                # (it was selected from them), and keep sampling it while it might.
                lead = int(order[-1])
                if means[lead] >= P.precision:
                    lb_lead = float(kl_lower(means[lead], math.log(len(cands) / P.delta) / max(ns[lead], 1)))
                    if lb_lead >= P.precision - _EPS_STOP:
                        break
                    arms = list(dict.fromkeys((lead, *arms)))
                if ub.max() - lb_.min() <= P.tau or spent + len(arms) * P.draw_size > lucb_end:
                    break
                yield draw([cands[i] for i in arms])
                for i in arms:
                    ns[i], pos[i] = stats(cands[i])
                t += 1
            means = pos / np.maximum(ns, 1)
            beam = [cands[i] for i in np.argsort(means, kind="stable")[::-1][:top]]
            passed = []
            for a in beam:
                mean, lb, n, ok = yield from verify(a)
                tried.append((mean, a, lb, n))
                if ok:
                    passed.append((mean, a, lb, n))
            if passed:
                mean, a, lb, n = max(passed, key=lambda r: r[0])
                return result(a, mean, lb, n, True)
            if spent + P.draw_size > P.max_passes:
                break
        # Nothing passed within the budget: the most precise anchor seen (alibi does the same).
        mean, a, lb, n = max(tried, key=lambda r: (r[0], -len(r[1])))
        return result(a, mean, lb, n, False)

    # ---- the driver: all searches of all images in lock-step, passes batched ----------------
    @torch.no_grad()
    def run(self, model, images: torch.Tensor, targets, *, batch_size: int = 64) -> list[torch.Tensor]:
        """Anchors of N images (N, C, H, W) for N label lists → N masks (L_i, H, W) float32.

        Per image: superpixels, the fill image, one pass on the image and ``initial_samples``
        unconstrained perturbations; then every (image, label) search advances in lock-step
        and each round's requested perturbations, across all images and labels, are predicted
        together in chunks of ``batch_size``.
        """
        P = self.params
        if images.ndim != 4 or len(targets) != images.shape[0]:
            raise self.error(f"images {tuple(images.shape)} and {len(targets)} label lists do not match; "
                             "expected (N, C, H, W) and one list per image")
        flat = [int(t) for labs in targets for t in labs]
        if flat and (min(flat) < 0 or max(flat) >= model.num_classes):
            raise self.error(f"target classes {sorted(set(flat))} out of range; expected 0 … {model.num_classes - 1}")
        n_img, _, h, w = images.shape
        host = self.host_pixels(images)  # superpixels and seeds are host work, on one copy
        segs = [self.segment(host[i]) for i in range(n_img)]
        fills = [self.fill_image(images[i], segs[i]) for i in range(n_img)]
        # Streams seeded by content: an image's anchor does not depend on its batch neighbours.
        pools = [_Pool(int(segs[i].max()) + 1, model.num_classes, P.seed,
                       int.from_bytes(image_digest(host[i]), "little"), P.p_replace) for i in range(n_img)]
        decided = _decisions(model.predict(images, batch_size=batch_size), model.activation)
        searches = {(i, j): self.search(pools[i], int(lab), bool(decided[i, int(lab)]))
                    for i, labs in enumerate(targets) for j, lab in enumerate(labs)}
        initial = [(i, frozenset(), P.initial_samples) for i, labs in enumerate(targets) if labs]
        self._serve(model, images, segs, fills, pools, initial, batch_size)
        live, details = {}, {}
        for key, gen in searches.items():
            self._advance(key, gen, live, details)
        while live:
            self._serve(model, images, segs, fills, pools,
                        [(k[0], a, n) for k, reqs in live.items() for a, n in reqs], batch_size)
            for key in list(live):
                del live[key]
                self._advance(key, searches[key], live, details)
        maps = []
        self.last_segments.extend(segs)
        for i, labs in enumerate(targets):
            out = torch.zeros(len(labs), h, w)
            for j in range(len(labs)):
                d = {**details[(i, j)], "image_passes": 1 + pools[i].passes}
                out[j] = torch.from_numpy(np.isin(segs[i], d["anchor"]).astype(np.float32))
                self.last_details.append(d)
            maps.append(to_device(out, images.device))
        new = self.last_details[len(self.last_details) - len(flat):]
        for key in ("precision", "precision_lb", "coverage", "passes", "found"):
            self.record(key, torch.tensor([float(d[key]) for d in new]))
        self.record("anchor_size", torch.tensor([float(len(d["anchor"])) for d in new]))
        return maps

    @staticmethod
    def _advance(key, gen, live, details) -> None:
        try:
            live[key] = next(gen)
        except StopIteration as stop:
            details[key] = stop.value

    def _serve(self, model, images, segs, fills, pools, requests, batch_size) -> None:
        """Grows the requested streams (image, anchor, length): draws what is missing, predicts
        it in chunks of ``batch_size`` composites across images, adds it to the pools. Two
        labels asking for the same stream in one round are served once."""
        want: dict[tuple[int, frozenset], int] = {}
        for i, anchor, length in requests:
            want[(i, anchor)] = max(want.get((i, anchor), 0), length)
        drawn = [(i, a, pools[i].draw(a, n)) for (i, a), n in want.items()]
        drawn = [d for d in drawn if d[2].shape[0]]
        seg_t = [torch.as_tensor(s, device=images.device) for s in segs]
        buf, decided = [], []

        def flush():
            nonlocal buf
            decided.append(_decide(model.probs(torch.cat(buf)), model.activation))  # stays on the device
            buf = []

        for i, _, z in drawn:
            start = 0
            while start < z.shape[0]:
                take = min(z.shape[0] - start, batch_size - sum(b.shape[0] for b in buf))
                keep = torch.as_tensor(z[start:start + take], device=images.device)[:, seg_t[i]]
                buf.append(torch.where(keep[:, None], images[i], fills[i]))
                start += take
                if sum(b.shape[0] for b in buf) == batch_size:
                    flush()
        if buf:
            flush()
        # One crossing per round of the search: the bandit reads the decisions on the host.
        preds = to_host(torch.cat(decided)).numpy() if decided else np.zeros((0, model.num_classes), bool)
        offset = 0
        for i, a, z in drawn:
            pools[i].extend(a, z, preds[offset:offset + z.shape[0]])
            offset += z.shape[0]

    # ---- the Explainer API --------------------------------------------------------------
    def explain_grouped(self, model, images, targets, *, batch_size: int = 32) -> list[torch.Tensor]:
        """Maps (L_i, H, W) float32 masks per image; labels of one image share the
        segmentation, the fill and every sampled perturbation (one pass predicts all classes).
        ``last_details`` then holds one dict per (image, label), in order."""
        self.reset_diagnostics()
        self.last_details, self.last_segments = [], []
        x = to_device(images.detach(), model_device(model))
        self._host = self.host_copy(images)
        try:
            maps = self.run(model, x, targets, batch_size=max(batch_size, 1))
        finally:
            self._host = None
        return [to_device(m, images.device) for m in maps]

    def explain(self, model, images, targets, *, batch_size: int = 32) -> torch.Tensor:
        self.last_details, self.last_segments = [], []
        return super().explain(model, images, targets, batch_size=batch_size)

    def attribute(self, model, images, targets):
        maps = self.run(model, images, [[t] for t in self.host_targets(targets)], batch_size=self.forward_batch)
        return torch.cat(maps) if maps else torch.zeros(0, *images.shape[2:], device=images.device)


def _decide(probs: torch.Tensor, activation: str) -> torch.Tensor:
    """(S, K) bool, where ``probs`` is: class predicted — p > 0.5 (sigmoid) or the argmax
    (softmax)."""
    p = probs.detach().float()
    if activation == "softmax":
        out = torch.zeros_like(p, dtype=torch.bool)
        out[torch.arange(p.shape[0], device=p.device), p.argmax(1)] = True
        return out
    return p > 0.5


def _decisions(probs: torch.Tensor, activation: str) -> np.ndarray:
    """:func:`_decide` as a host array."""
    return to_host(_decide(probs, activation)).numpy()
