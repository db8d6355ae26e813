"""Localisation scores recomputed from a run directory alone.

A run stores, per part, each label row's saliency maps and the object mask the localisation
metrics scored against (``masks``/``has_mask`` in the part's arrays, FORMAT.md), the labels'
ground-truth flags, the metrics' parameters and the seed. That is everything the
localisation metrics read, so anyone holding the run directory — without the dataset or the
model — can check the stored scores or score the same maps with other parameters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from .errors import SummaryError
from .metrics import METRICS, MetricContext
from .summary.format import SCHEMAS
from .summary.reader import RunReader


def localisation_metrics(reader: RunReader) -> list[dict]:
    """The run's metric entries that read nothing but the maps and the object masks."""
    return [m for m in reader.metrics if "masks" in m.get("needs", []) and set(m.get("needs", [])) <= {"masks"}]


def recompute_localisation(run_dir: str | Path, *, params: dict[str, dict] | None = None) -> pd.DataFrame:
    """Every localisation score of the run, recomputed from the stored maps and masks.

    Returns rows like the ``scores`` table (sample_index, label, explainer, metric, raw,
    score), one per (label row, explainer, localisation metric), in the stored order of each
    part. ``params`` overrides a metric instance's parameters ({instance name: {param: value}},
    e.g. ``{"pointing_game": {"tolerance": 1}}``). Raises SummaryError when a part was written
    without its object masks (runs from before they were stored).
    """
    r = RunReader(run_dir)
    entries = localisation_metrics(r)
    if not entries:
        raise SummaryError(f"{run_dir}: the run has no localisation metric to recompute")
    overrides = params or {}
    metrics = [METRICS.get(m["type"])({**(m.get("params") or {}), **overrides.get(m["name"], {})},
                                      instance_name=m["name"]) for m in entries]
    seed = int((r.manifest.get("config") or {}).get("seed", 0))
    labels = r.labels()
    samples = r.samples().set_index("sample_index")
    cols: dict[str, list] = {k: [] for k in ("sample_index", "label", "explainer", "metric", "raw", "score")}
    for part in r.parts():
        rows = labels[labels["part"] == part].sort_values("map_offset")
        if rows.empty:
            continue
        masks, has_mask = r.masks_part(part)
        offsets = rows["map_offset"].to_numpy()
        # The localisation metrics never read pixels; the stored images keep the context honest.
        images = torch.from_numpy(np.stack([r.image(part, samples.at[s, "offset"]) for s in rows["sample_index"]]))
        images = images.permute(0, 3, 1, 2).float() / 255.0
        targets = torch.tensor(rows["label"].to_numpy(), dtype=torch.long)
        for e in r.explainers:
            sal = torch.from_numpy(r.saliency_part(e["name"], part)[offsets])
            ctx = MetricContext(None, images, targets, sal, masks=masks[offsets], has_mask=has_mask[offsets],
                                is_ground_truth=rows["is_gt"].to_numpy(bool), seed=seed)
            for met in metrics:
                raw = np.asarray(met.evaluate(ctx), dtype=np.float64)
                cols["sample_index"] += rows["sample_index"].tolist()
                cols["label"] += rows["label"].tolist()
                cols["explainer"] += [e["name"]] * len(raw)
                cols["metric"] += [met.instance_name] * len(raw)
                cols["raw"] += raw.tolist()
                cols["score"] += met.normalise(raw).tolist()
    cols["nan_reason"] = [None] * len(cols["raw"])  # localisation never runs the model
    return pa.Table.from_pydict(cols, schema=SCHEMAS["scores"]).to_pandas()
