"""A run directory as pandas DataFrames, maps and figures for a notebook (``xai_core.open_run``).

The frames are the run's tables with class names added and storage columns (part, offsets)
left out; :meth:`Run.ranking` is the dashboard's comprehensive assessment (the same functions
of :mod:`xai_core.dashboard.assessment`, the same defaults); :meth:`Run.show` draws maps with
the dashboard's display normalisation (:mod:`xai_core.dashboard.overlay`). A run still being
written is re-read when its manifest changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import SummaryError, XaiError, one_line_errors


class Run:
    """Read access to one run directory."""

    def __init__(self, path: str | Path):
        from .summary.reader import RunReader

        self.path = Path(path)
        self._reader = RunReader(self.path)  # refuses a directory that is not a run, in one line
        self._cache: dict = {}
        self._stamp = None

    def __repr__(self) -> str:
        m = self.manifest
        prog = m.get("progress") or {}
        return (f"Run({str(self.path)!r}: {m.get('status')}, {prog.get('done_samples')} samples, "
                f"explainers {self.explainers}, metrics {self.metrics})")

    # ---- manifest ------------------------------------------------------------------------
    def _fresh(self):
        from .dashboard.tables import run_stamp
        from .summary.reader import RunReader

        stamp = run_stamp(self.path)
        if stamp != self._stamp:
            self._reader = RunReader(self.path)
            self._cache, self._stamp = {}, stamp
        return self._reader

    @property
    def manifest(self) -> dict:
        return self._fresh().manifest

    @property
    def status(self) -> str:
        return self._fresh().status

    @property
    def classes(self) -> list[str]:
        return self._fresh().classes

    @property
    def explainers(self) -> list[str]:
        return [str(e.get("name")) for e in self._fresh().explainers]

    @property
    def metrics(self) -> list[str]:
        return [str(m.get("name")) for m in self._fresh().metrics]

    @property
    def steps(self) -> list[int]:
        """The run's steps, in order: [0] (or the step it recorded) for a run of one step; one
        per :meth:`xai_core.Monitor.log` call for a run written while a model trained."""
        return self._fresh().steps

    def _reader_at(self, step: int | None):
        """The reader of ``step`` (None: the newest)."""
        r = self._fresh()
        if step is None or step == r.step:
            return r
        if ("reader", step) not in self._cache:
            self._cache[("reader", step)] = r.at(step)  # SummaryError naming the run's steps
        return self._cache[("reader", step)]

    def _memo(self, key, build, step: int | None = None):
        reader = self._reader_at(step)
        if (key, reader.step) not in self._cache:
            self._cache[(key, reader.step)] = build(reader)
        return self._cache[(key, reader.step)]

    def _over_steps(self, key: str, build) -> pd.DataFrame:
        """``build``'s frame of every step, concatenated, with a ``step`` column last."""
        steps = self.steps or [None]
        frames = [self._memo(key, build, s).assign(step=np.int64(self._reader_at(s).step)) for s in steps]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def _name(self, label: int) -> str | None:
        c = self.classes
        return c[label] if 0 <= label < len(c) else None

    # ---- tables ----------------------------------------------------------------------------
    @property
    def samples(self) -> pd.DataFrame:
        """One row per image: sample_index, sample_id, source, ground_truth (class names),
        predicted (class names the tag rules call predicted), top_class, top_prob, probs (every
        class, an array), height, width, step (one row per image and step)."""
        def build(r):
            s = r.samples().sort_values("sample_index").reset_index(drop=True)
            lab = r.labels()
            pred = lab[lab["is_pred"]].groupby("sample_index")["label"].apply(lambda v: [self._name(int(x)) for x in v])
            probs = [np.asarray(p, dtype=np.float32) for p in s["probs"]]
            top = [int(np.argmax(p)) if len(p) else -1 for p in probs]
            return pd.DataFrame({
                "sample_index": s["sample_index"].to_numpy(), "sample_id": s["sample_id"], "source": s["source"],
                "ground_truth": [[self._name(int(x)) for x in g] for g in s["gt_labels"]],
                "predicted": [pred.get(i, []) for i in s["sample_index"]],
                "top_class": [self._name(t) for t in top],
                "top_prob": [float(p[t]) if t >= 0 else np.nan for p, t in zip(probs, top)],
                "probs": probs, "height": s["height"].to_numpy(), "width": s["width"].to_numpy()})
        return self._over_steps("samples", build)

    @property
    def labels(self) -> pd.DataFrame:
        """One row per explained (image, label): sample_id, sample_index, label, class, prob,
        tag (TP/FP/FN/TN), is_gt, is_pred, in_top_k, the uncertainty columns when the run
        has them, and step."""
        def build(r):
            lab = r.labels().sort_values(["sample_index", "map_offset"], kind="stable").reset_index(drop=True)
            ids = self._ids(r)
            out = pd.DataFrame({"sample_id": lab["sample_index"].map(ids), "sample_index": lab["sample_index"],
                                "label": lab["label"].astype(int), "class": [self._name(int(x)) for x in lab["label"]]})
            keep = ["prob", "tag", "is_gt", "is_pred", "in_top_k"] + [
                c for c in ("prob_mean", "prob_std", "ci_low", "ci_high") if c in lab and not lab[c].isna().all()]
            return pd.concat([out, lab[keep]], axis=1)
        return self._over_steps("labels", build)

    @property
    def scores(self) -> pd.DataFrame:
        """One row per (image, label, explainer, metric): sample_id, sample_index, label (−1 for
        label-agnostic metrics), class, explainer, metric, raw (the metric's own value), score
        (raw mapped to [0, 1], higher is better), step."""
        def build(r):
            sc = r.scores()
            ids = self._ids(r)
            return pd.DataFrame({"sample_id": sc["sample_index"].map(ids), "sample_index": sc["sample_index"],
                                 "label": sc["label"].astype(int), "class": [self._name(int(x)) for x in sc["label"]],
                                 "explainer": sc["explainer"], "metric": sc["metric"], "raw": sc["raw"],
                                 "score": sc["score"]})
        return self._over_steps("scores", build)

    @property
    def details(self) -> pd.DataFrame:
        """Per-map figures (anchor precision and coverage, IG completeness error, has_negative):
        sample_id, sample_index, label, explainer, key, value, step."""
        def build(r):
            d = r.details()
            return pd.concat([pd.DataFrame({"sample_id": d["sample_index"].map(self._ids(r))}), d], axis=1)
        return self._over_steps("details", build)

    def _ids(self, r) -> dict:
        return self._memo("ids", lambda rr: dict(zip(rr.samples()["sample_index"], rr.samples()["sample_id"])), r.step)

    def _row(self, sample_id: str, step: int | None = None):
        """The samples-table row (part, offset) of ``sample_id`` (at ``step``)."""
        s = self._memo("rows", lambda r: r.samples().set_index("sample_id", drop=False), step)
        if sample_id not in s.index:
            shown = list(s.index[:8])
            raise XaiError(f"{self.path}: no sample {sample_id!r}; expected one of {shown}{'…' if len(s) > 8 else ''}")
        return s.loc[sample_id]

    def _label_index(self, label) -> int:
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            return int(label)
        if label in self.classes:
            return self.classes.index(label)
        raise XaiError(f"label {label!r} is not a class of this run; expected an index or one of {self.classes[:12]}")

    def _label_row(self, sample_id: str, label, step: int | None = None):
        row = self._row(sample_id, step)
        lab = self._memo("labels_raw", lambda r: r.labels(), step)
        mine = lab[lab["sample_index"] == row["sample_index"]].sort_values("map_offset")
        if label is None:
            return row, mine.iloc[0]
        want = self._label_index(label)
        hit = mine[mine["label"] == want]
        if hit.empty:
            names = [self._name(int(x)) for x in mine["label"]]
            raise XaiError(f"sample {sample_id!r} has no map for label {label!r}; its explained labels are {names}")
        return row, hit.iloc[0]

    # ---- arrays ----------------------------------------------------------------------------
    def image(self, sample_id: str, step: int | None = None) -> np.ndarray:
        """(H, W, 3) uint8: the image as the model saw it."""
        row = self._row(sample_id, step)
        return self._reader_at(step).image(int(row["part"]), int(row["offset"]))

    def map(self, sample_id: str, label=None, explainer: str | None = None, *, step: int | None = None) -> np.ndarray:
        """(H, W) float32 raw map (sign and scale kept) of ``explainer`` (default: the first)
        for ``label`` (index or class name; default: the image's most probable explained label)
        at ``step`` (default: the newest)."""
        explainer = explainer or self.explainers[0]
        if explainer not in self.explainers:
            raise XaiError(f"{self.path}: no explainer {explainer!r}; expected one of {self.explainers}")
        _, lab = self._label_row(sample_id, label, step)
        return self._reader_at(step).saliency(explainer, int(lab["part"]), int(lab["map_offset"]))

    # ---- the dashboard's numbers -----------------------------------------------------------
    def ranking(self, weights: Mapping[str, float] | None = None, *, tags: Sequence[str] = (),
                localisation_tags: Sequence[str] | None = None) -> pd.DataFrame:
        """The comprehensive assessment, one row per explainer in rank order: rank, explainer,
        comprehensive (Σ wᵢ · meanᵢ over the metrics, weights normalised), metrics_used, then per
        metric its mean, 95 % interval, counts and weight (and the sanity verdict if checked).

        Defaults are the dashboard's: every scored metric weighs 1; ``tags`` () counts every
        tag; localisation metrics count TP labels (``localisation_tags``)."""
        from .dashboard import assessment as A
        from .dashboard.tables import RunTables

        t = self._memo("tables", lambda r: RunTables.load(self.path))
        infos = A.scored_metric_infos(t)
        if not infos:
            raise SummaryError(f"{self.path}: the run has no evaluation scores to rank explainers by; "
                               "give metrics= when explaining")
        if weights is None:
            weights = {m.name: 1.0 for m in infos}
        unknown = sorted(set(weights) - {m.name for m in infos})
        if unknown:
            raise XaiError(f"weights name {unknown[0]!r}, not a scored metric of this run; expected some of "
                           f"{[m.name for m in infos]}")
        loc = A.LOCALISATION_TAGS if localisation_tags is None else tuple(localisation_tags)
        flt = A.RowFilter(tuple(tags), tuple(loc))
        return A.assessment_table(t, A.explainer_metric_table(t, rows_filter=flt), weights)

    def show(self, sample_id: str, label=None, explainers: Sequence[str] | None = None, *, polarity: str | None = None,
             clip_percentile: float = 99.5, opacity: float = 0.5, overlay: bool = True):
        """A matplotlib figure: the image, then one panel per explainer with its map for
        ``label`` (default: the most probable explained label) over the image, each on its own
        colour scale clipped at ``clip_percentile`` (signed maps on a diverging map by default)."""
        from matplotlib.figure import Figure

        from .dashboard.overlay import OverlayStyle, clip_value, render

        explainers = list(explainers or self.explainers)
        row, lab = self._label_row(sample_id, label)
        image = self.image(sample_id)
        fig = Figure(figsize=(2.6 * (1 + len(explainers)), 3.0), layout="constrained")
        axes = fig.subplots(1, 1 + len(explainers), squeeze=False)[0]
        axes[0].imshow(image)
        axes[0].set_title("image", fontsize=9)
        for ax, name in zip(axes[1:], explainers):
            sal = self.map(sample_id, int(lab["label"]), name)
            signed = self._fresh().signed(name)
            style = OverlayStyle(overlay=overlay, opacity=opacity, clip_percentile=clip_percentile,
                                 polarity=polarity or ("signed" if signed else "absolute"))
            vmax = clip_value([sal], style)
            ax.imshow(render(image, sal, vmax, style))
            ax.set_title(f"{name}\n±{vmax:.3g}" if style.signed else f"{name}\n0–{vmax:.3g}", fontsize=9)
        for ax in axes:
            ax.set_axis_off()
        fig.suptitle(f"{sample_id} · {self._name(int(lab['label']))} p={float(lab['prob']):.3f} {lab['tag']}",
                     fontsize=10)
        return fig


def open_run(path: str | Path) -> Run:
    """The run in ``path`` (a directory holding ``manifest.json``)."""
    with one_line_errors():
        return Run(path)
