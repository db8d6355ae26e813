"""Explain images live (the "Explain an image" page), through the core: the model is loaded by
:func:`xai_core.models.loading.load_model`, the maps and scores come from the runner's engine
through :class:`xai_core.append.LiveExplainer` (the same predictions, tags, maps and scores a
run stores), and "Add to a run" appends them with :class:`xai_core.append.RunLog` to a scratch
run in the logdir, in the normal format, so they appear in the grid and the assessments.

Bounds (:data:`~.live_inputs.LIMITS`): at most ``max_images`` images and ``max_labels`` labels
per image per request; an explainer's parameters may cost at most ``max_passes`` model passes
per (image, label) (the explanation service's bound, :func:`~xai_core.service.protocol.passes_per_label`);
no new image is started once a request has run ``max_seconds``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import XaiError
from .live_inputs import LIMITS, LiveError, LiveLimits, LiveModel
from .live_request import (CURVE_METRICS, DEFAULT_EXPLAINERS, MAP_METRICS, SCRATCH, LiveRequest,  # noqa: F401
                           check_request, explainer_choices, main_params)

# One live computation at a time per server: the engines of one model share its network, and
# hook-based explainers (Grad-CAM) must not hook it from two requests at once. The other pages
# keep serving meanwhile.
_COMPUTE = threading.Lock()


def load_handle(model: LiveModel):
    """The loaded model (torch, TorchScript or ONNX Runtime), checked against its classes."""
    from ..config import config_from_dict
    from ..models.loading import load_model

    cfg = config_from_dict(LiveRequest((("random", ()),)).run_config(model))
    try:
        return load_model(cfg.model, num_classes=len(model.classes))
    except XaiError as e:
        raise LiveError(str(e)) from e


def make_engine(model: LiveModel, handle, req: LiveRequest):
    """The runner's engine for this model and request (:class:`xai_core.append.LiveExplainer`)."""
    from ..append import LiveExplainer
    from ..config import config_from_dict

    try:
        return LiveExplainer(config_from_dict(req.run_config(model)), model=handle)
    except XaiError as e:
        raise LiveError(str(e)) from e


@dataclass
class LiveImage:
    """One explained image: ``image`` as the model saw it (uint8), ``probs`` (K,), ``labels``
    (label, class, probability, tag) rows, ``maps`` {explainer: {label: (H, W) float32}},
    ``scores`` rows (label, explainer, metric, raw, score), ``boxes`` (class, x0, y0, x1, y1)."""

    sample_id: str
    image: np.ndarray
    probs: np.ndarray
    labels: pd.DataFrame
    maps: dict
    scores: pd.DataFrame
    boxes: list = field(default_factory=list)
    computed: object = None  # the engine's Explained: "Add to a run" commits it as computed


@dataclass
class _Done:
    """The last explained images of the server, so a repeated click is not recomputed."""

    size: int = 32
    items: "OrderedDict[tuple, LiveImage]" = field(default_factory=OrderedDict)
    hits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: tuple):
        with self.lock:
            got = self.items.get(key)
            if got is not None:
                self.items.move_to_end(key)
                self.hits += 1
            return got

    def put(self, key: tuple, img: LiveImage) -> None:
        with self.lock:
            self.items[key] = img
            while len(self.items) > self.size:
                self.items.popitem(last=False)


DONE = _Done()


def _item_key(model: LiveModel, req: LiveRequest, item) -> tuple:
    return (model.key, req.key, req.labels, str(item.id), str(item.source), json.dumps(item.labels, default=str))


@dataclass
class LiveResult:
    images: list[LiveImage]
    seconds: float
    skipped: list[str]
    explainers: list[str]
    signed: dict[str, bool]


def _image_of(got, i: int, classes: Sequence[str]) -> LiveImage:
    res = got.result
    lab, sc = res["labels"], res["scores"]
    rows = got.labels_of(i)
    sidx = res["samples"]["sample_index"][i]
    labels = pd.DataFrame({"label": [int(lab["label"][r]) for r in rows],
                           "class": [classes[int(lab["label"][r])] for r in rows],
                           "probability": [float(lab["prob"][r]) for r in rows],
                           "tag": [str(lab["tag"][r]) for r in rows]})
    labels = labels.sort_values("probability", ascending=False, kind="stable").reset_index(drop=True)
    maps = {e: {int(lab["label"][r]): np.asarray(res["saliency"][e][r]) for r in rows} for e in res["saliency"]}
    keep = [j for j, s in enumerate(sc["sample_index"]) if s == sidx]
    scores = pd.DataFrame({"label": [int(sc["label"][j]) for j in keep], "explainer": [sc["explainer"][j] for j in keep],
                           "metric": [sc["metric"][j] for j in keep], "raw": [float(sc["raw"][j]) for j in keep],
                           "score": [float(sc["score"][j]) for j in keep]})
    boxes = [(classes[int(b[0])], *map(float, b[1:5])) for b in res["samples"]["boxes"][i]]
    return LiveImage(str(res["samples"]["sample_id"][i]), np.asarray(res["images"][i]),
                     np.asarray(res["samples"]["probs"][i], dtype=np.float64), labels, maps, scores, boxes)


def _explain_watched(engine, item, targets, where, on_passes, planned: int, every_s: float = 0.2):
    """``engine.explain([item])`` in a worker thread while this thread reports the model passes
    made so far (``on_passes(done, planned)``, after each pass batch it sees) — Streamlit's
    widgets can only be updated from the page's own thread."""
    counter = engine.ctx.model
    start, box = counter.passes, {}

    def work():
        try:
            box["got"] = engine.explain([item], targets=targets, where=where)
        except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
            box["error"] = e

    worker = threading.Thread(target=work, name="xaiboard-live", daemon=True)
    worker.start()
    seen = -1
    while worker.is_alive():
        worker.join(every_s)
        done = counter.passes - start
        if done != seen:
            seen = done
            on_passes(min(done, planned), planned)
    if "error" in box:
        raise box["error"]
    on_passes(planned, planned)
    return box["got"]


def planned_passes(model: LiveModel, req: LiveRequest) -> int:
    """Model passes one image takes at most: each explainer's per label, times the labels, plus
    the prediction (exact for one label; occlusion shares its windows' passes between labels)."""
    from .live_settings import plan

    labels = len(req.labels) if req.labels else req.top_k
    return sum(step["passes"] for step in plan(model, req)) * labels + 1


def explain_images(engine, model: LiveModel, req: LiveRequest, items: Sequence, *,
                   on_progress: Callable[[int, int, str], None] | None = None,
                   on_passes: Callable[[int, int], None] | None = None,
                   limits: LiveLimits = LIMITS) -> LiveResult:
    """Explain ``items`` (:class:`xai_core.data.memory.Item`) one at a time with ``engine``;
    ``on_progress(done, total, sample id)`` after each, ``on_passes(done, planned)`` while one
    is computed (model passes made of those planned: the bar moves per pass batch). Images not
    started within ``limits.max_seconds`` are listed in ``skipped``."""
    planned = planned_passes(model, req) if on_passes else 0
    t0 = time.perf_counter()
    out, skipped = [], []
    for i, item in enumerate(items):
        key = _item_key(model, req, item)
        img = DONE.get(key)
        if img is None and time.perf_counter() - t0 > limits.max_seconds:
            skipped.append(str(item.id))
            continue
        if img is None:
            try:
                where = lambda k, i=i: f"image {i + 1} ({item.id})"  # noqa: E731
                with _COMPUTE:
                    if on_passes:
                        got, _ = _explain_watched(engine, item, req.targets(1), where, on_passes, planned)
                    else:
                        got, _ = engine.explain([item], targets=req.targets(1), where=where)
            except XaiError as e:
                raise LiveError(str(e)) from e
            img = _image_of(got, 0, model.classes)
            img.computed = got
            DONE.put(key, img)
        out.append(img)
        if on_progress:
            on_progress(i + 1, len(items), str(item.id))
    exps = engine.ctx.explainers
    return LiveResult(out, time.perf_counter() - t0, skipped, [e.instance_name for e in exps],
                      {e.instance_name: bool(e.is_signed) for e in exps})


def scratch_run(model: LiveModel, req: LiveRequest) -> str:
    """The scratch run (name under the logdir) that this model and request add to: one per
    configuration, as a run log requires (``scratch/<origin>-<model>-<request>``)."""
    origin = "".join(c if c.isalnum() or c in "-_" else "_" for c in (model.origin or "upload"))[:40]
    return f"{SCRATCH}/{origin}-{model.key[:6]}-{req.key}"


def add_to_run(engine, model: LiveModel, req: LiveRequest, items: Sequence, logdir: str | Path,
               shown: Sequence[LiveImage] = ()) -> tuple[str, list[int]]:
    """Append ``items`` to the scratch run of this configuration under ``logdir`` (made on
    first use), one committed part per image; returns (run name, parts). ``shown``: the images
    :func:`explain_images` returned for them; their computed maps and scores are committed as
    they are (the run holds the maps the page showed, nothing is computed twice). An item
    without one is computed alone with the same engine, as :func:`explain_images` does."""
    from ..append import RunLog

    name = scratch_run(model, req)
    done = {img.sample_id: img.computed for img in shown if img.computed is not None}
    parts = []
    try:
        with _COMPUTE, RunLog.open(Path(logdir) / name, engine) as log:
            for i, item in enumerate(items):
                got = log.append([item], targets=req.targets(1), where=lambda k, i=i: f"image {i + 1} ({item.id})",
                                 computed=done.get(str(item.id)))
                parts.append(int(got.part))
    except XaiError as e:
        raise LiveError(str(e)) from e
    except OSError as e:
        raise LiveError(f"cannot write the scratch run {name} under {logdir}: {e.strerror or e}") from e
    return name, parts


def sample_item(t, store, pos: int, run_name: str):
    """The Item of a sample of a run (its stored image, ground truth and boxes), to explain again."""
    from ..data.memory import Item

    image = store.image(int(t.scol("part")[pos]), int(t.scol("offset")[pos]))
    boxes = [(b[0], list(b[1:5])) for b in t.boxes(pos)]
    sid = str(t.scol("sample_id")[pos])
    return Item(np.array(image), labels=t.gt_labels(pos), boxes=boxes or None, id=sid,
                source=f"run {run_name}, sample {sid}")


def upload_item(image: np.ndarray, name: str, labels: Sequence[int] = ()):
    """The Item of an uploaded image; its id is the file's stem and a content hash. ``labels``:
    its ground-truth classes (indices), so its labels are tagged TP / FP / FN / TN like a run's."""
    from ..data.memory import Item

    digest = hashlib.sha256(image.tobytes()).hexdigest()[:6]
    return Item(image, labels=[int(c) for c in labels] or None, id=f"{Path(name).stem[:40]}-{digest}",
                source=f"upload {name}")


def metric_names() -> dict[str, str]:
    """{metric: the name of its [0, 1] score} of the metrics the page computes ("Deletion (1 − AUC)")."""
    from .metric_info import registry_score_names

    return registry_score_names(MAP_METRICS + CURVE_METRICS)


def scores_table(img: LiveImage, label: int, names: dict[str, str]) -> pd.DataFrame:
    """Explainers × metrics [0, 1] scores of one label (label-agnostic ones included)."""
    s = img.scores[(img.scores["label"] == label) | (img.scores["label"] < 0)]
    if not len(s):
        return pd.DataFrame()
    p = s.pivot_table(index="explainer", columns="metric", values="score", aggfunc="first", sort=False)
    return p.rename(columns=lambda m: names.get(m, m))


def top_probabilities(img: LiveImage, classes: Sequence[str], k: int = 10) -> pd.DataFrame:
    order = np.argsort(-img.probs, kind="stable")[:k]
    return pd.DataFrame({"class": [classes[c] for c in order], "probability": img.probs[order]})


__all__ = ["DONE", "LIMITS", "LiveError", "LiveRequest", "LiveResult", "add_to_run", "check_request", "explain_images",
           "explainer_choices", "load_handle", "main_params", "make_engine", "sample_item", "scratch_run",
           "upload_item"]
