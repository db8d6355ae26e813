"""Paths, schemas and the version of the summary format (FORMAT.md is the contract)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa

FORMAT_VERSION = 3
MANIFEST = "manifest.json"
TABLES = ("samples", "labels", "scores", "counterfactuals", "details")

SAMPLES_SCHEMA = pa.schema([
    ("sample_index", pa.int64()),      # position in the dataset
    ("sample_id", pa.string()),
    ("source", pa.string()),
    ("part", pa.int32()),
    ("offset", pa.int32()),            # row of the image in the part's `images` array
    ("gt_labels", pa.list_(pa.int32())),
    ("probs", pa.list_(pa.float32())), # every class's probability
    ("boxes", pa.list_(pa.list_(pa.float32()))),  # [label, x_min, y_min, x_max, y_max] at stored size
    ("height", pa.int32()),
    ("width", pa.int32()),
])
LABELS_SCHEMA = pa.schema([
    ("sample_index", pa.int64()),
    ("label", pa.int32()),
    ("prob", pa.float32()),
    ("tag", pa.string()),
    ("is_gt", pa.bool_()),
    ("is_pred", pa.bool_()),
    ("in_top_k", pa.bool_()),
    ("part", pa.int32()),
    ("map_offset", pa.int32()),        # row of the map in the part's saliency arrays
    # Prediction uncertainty (MC dropout); null when the run has none.
    ("prob_mean", pa.float32()),
    ("prob_std", pa.float32()),
    ("ci_low", pa.float32()),
    ("ci_high", pa.float32()),
])
SCORES_SCHEMA = pa.schema([
    ("sample_index", pa.int64()),
    ("label", pa.int32()),             # -1 for label-agnostic metrics
    ("explainer", pa.string()),
    ("metric", pa.string()),
    ("raw", pa.float64()),
    ("score", pa.float64()),           # raw mapped to [0, 1], higher = better
    # Why a NaN score is NaN when the model misbehaved (non-finite outputs); null otherwise, and
    # in parts written before the column existed.
    ("nan_reason", pa.string()),
])
COUNTERFACTUALS_SCHEMA = pa.schema([
    ("sample_index", pa.int64()),
    ("label", pa.int32()),
    ("layer", pa.int32()),             # 0 = largest windows
    ("side", pa.int32()),              # window side in pixels
    ("prob", pa.float32()),            # p(label) with only this layer's windows kept sharp
    ("boxes", pa.list_(pa.list_(pa.float32()))),  # [x_min, y_min, x_max, y_max] windows
])
DETAILS_SCHEMA = pa.schema([
    ("sample_index", pa.int64()),
    ("label", pa.int32()),
    ("explainer", pa.string()),        # instance name
    ("key", pa.string()),              # e.g. precision, coverage (anchors), completeness_error (IG)
    ("value", pa.float64()),
])
SCHEMAS = {"samples": SAMPLES_SCHEMA, "labels": LABELS_SCHEMA, "scores": SCORES_SCHEMA,
           "counterfactuals": COUNTERFACTUALS_SCHEMA, "details": DETAILS_SCHEMA}
# Tables a part may omit (older runs, or features switched off).
OPTIONAL_TABLES = ("counterfactuals", "details")


def part_name(part: int) -> str:
    return f"part-{part:06d}"


def table_path(run_dir: Path, table: str, part: int) -> Path:
    return run_dir / "tables" / table / f"{part_name(part)}.parquet"


def arrays_path(run_dir: Path, part: int) -> Path:
    return run_dir / "arrays" / f"{part_name(part)}.zarr"


def part_of(path: Path) -> int | None:
    stem = path.name.split(".")[0]
    if stem.startswith("part-") and stem[5:].isdigit():
        return int(stem[5:])
    return None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Files get the usual 0644 (less the umask) like zarr's chunks; mkstemp alone would leave 0600.
FILE_MODE = 0o666 & ~_umask()
# Key of the samples table's Parquet metadata holding the part's commit record (FORMAT.md).
COMMIT_KEY = b"xaiboard.commit"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write then rename, so a reader never sees half a file and a crash leaves the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def json_default(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")
