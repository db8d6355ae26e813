"""Writes a run directory incrementally: one committed *part* per batch.

A part is committed by writing its arrays and its labels/scores tables first and its samples
table last, each by an atomic rename; readers and ``--resume`` treat a part as present only
when its samples table exists. A crash therefore loses at most the part in flight, and a
re-run of that part overwrites whatever half of it was left behind.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from ..errors import SummaryError
from .format import (FORMAT_VERSION, MANIFEST, SCHEMAS, arrays_path, atomic_write_bytes,
                     atomic_write_json, part_of, table_path)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _table_bytes(rows: dict, table: str) -> bytes:
    schema = SCHEMAS[table]
    n = len(next(iter(rows.values()))) if rows else 0
    # Optional columns (e.g. uncertainty) may be left out: they are stored as nulls.
    rows = {f.name: rows.get(f.name, [None] * n) for f in schema}
    tab = pa.Table.from_pydict(rows, schema=schema)
    buf = io.BytesIO()
    pq.write_table(tab, buf, compression="zstd")
    return buf.getvalue()


def _write_arrays(run_dir: Path, part: int, images: np.ndarray, saliency: dict[str, np.ndarray],
                  masks: np.ndarray | None = None, has_mask: np.ndarray | None = None) -> None:
    final = arrays_path(run_dir, part)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    group = zarr.open_group(str(tmp), mode="w")
    # Chunks of a few rows: one map is read without decoding the whole part.
    n = images.shape[0]
    arr = group.create_array("images", shape=images.shape, dtype="uint8", chunks=(min(8, max(n, 1)), *images.shape[1:]))
    arr[...] = images
    sal = group.require_group("saliency")
    for name, maps in saliency.items():
        maps = np.ascontiguousarray(maps, dtype=np.float32)
        a = sal.create_array(name, shape=maps.shape, dtype="float32", chunks=(min(8, max(maps.shape[0], 1)), *maps.shape[1:]))
        a[...] = maps
    if masks is not None:  # optional: the object masks the localisation metrics scored against
        masks = np.ascontiguousarray(masks, dtype=bool)
        m = group.create_array("masks", shape=masks.shape, dtype="bool", chunks=(min(8, max(masks.shape[0], 1)), *masks.shape[1:]))
        m[...] = masks
        has = np.asarray(has_mask if has_mask is not None else masks.reshape(len(masks), -1).any(axis=1), dtype=bool)
        group.create_array("has_mask", shape=has.shape, dtype="bool", chunks=(max(has.shape[0], 1),))[...] = has
    if final.exists():  # left over from a crashed attempt at this part
        shutil.rmtree(final)
    os.replace(tmp, final)


def write_part(run_dir: str | Path, part: int, *, samples: dict, labels: dict, scores: dict,
               images: np.ndarray, saliency: dict[str, np.ndarray], counterfactuals: dict | None = None,
               details: dict | None = None, masks: np.ndarray | None = None,
               has_mask: np.ndarray | None = None) -> None:
    """Commit one part. ``samples``/``labels``/``scores`` are column dicts matching the
    schemas in format.py; images (n, H, W, 3) uint8; saliency {explainer: (m, H, W) float32}
    with m = number of label rows; optional ``masks`` (m, H, W) bool, each label row's object
    mask, with ``has_mask`` (m,) bool saying which rows have one. Safe to call from several
    processes on distinct parts."""
    run_dir = Path(run_dir)
    _write_arrays(run_dir, part, images, saliency, masks, has_mask)
    for name, cols in (("counterfactuals", counterfactuals), ("details", details)):
        if cols is not None:  # optional tables (format.OPTIONAL_TABLES)
            atomic_write_bytes(table_path(run_dir, name, part), _table_bytes(cols, name))
    atomic_write_bytes(table_path(run_dir, "scores", part), _table_bytes(scores, "scores"))
    atomic_write_bytes(table_path(run_dir, "labels", part), _table_bytes(labels, "labels"))
    atomic_write_bytes(table_path(run_dir, "samples", part), _table_bytes(samples, "samples"))


def committed_parts(run_dir: str | Path) -> set[int]:
    d = Path(run_dir) / "tables" / "samples"
    if not d.is_dir():
        return set()
    return {p for f in d.glob("part-*.parquet") if (p := part_of(f)) is not None}


class RunWriter:
    """Owns the manifest of one run: creation, progress, final status."""

    def __init__(self, run_dir: str | Path, manifest: dict):
        self.run_dir = Path(run_dir)
        self.manifest = manifest
        self._last_flush = 0.0

    @classmethod
    def create(cls, run_dir: str | Path, manifest: dict, *, overwrite: bool = False) -> "RunWriter":
        run_dir = Path(run_dir)
        if (run_dir / MANIFEST).exists() and not overwrite:
            raise SummaryError(
                f"{run_dir} already holds a run; use --resume {run_dir} to finish it, or --overwrite to replace it"
            )
        if overwrite and run_dir.exists():
            for sub in ("tables", "arrays"):
                shutil.rmtree(run_dir / sub, ignore_errors=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        stamp = now_iso()
        manifest = {"format_version": FORMAT_VERSION, "status": "running", "created": stamp,
                    "updated": stamp, "error": None, **manifest}
        w = cls(run_dir, manifest)
        w.flush(force=True)
        return w

    @classmethod
    def reopen(cls, run_dir: str | Path) -> "RunWriter":
        from .reader import read_manifest

        run_dir = Path(run_dir)
        manifest = read_manifest(run_dir)
        manifest["status"] = "running"
        manifest["error"] = None
        w = cls(run_dir, manifest)
        w.flush(force=True)
        return w

    def flush(self, *, force: bool = False) -> None:
        # The dashboard polls the manifest; a write per second at most is plenty.
        if force or time.monotonic() - self._last_flush > 1.0:
            self.manifest["updated"] = now_iso()
            atomic_write_json(self.run_dir / MANIFEST, self.manifest)
            self._last_flush = time.monotonic()

    def progress(self, done_samples: int, done_parts: int, *, force: bool = False, **extra) -> None:
        self.manifest["progress"].update(done_samples=done_samples, done_parts=done_parts, **extra)
        self.flush(force=force)

    def finish(self, status: str, error: str | None = None, **extra) -> None:
        if status == "complete":
            self._record_measured_signs()
        self.manifest["status"] = status
        self.manifest["error"] = error
        self.manifest["finished"] = now_iso()
        self.manifest.update(extra)
        self.flush(force=True)

    def _record_measured_signs(self) -> None:
        """Each explainer entry's ``signed`` becomes what its maps are: signed when the
        instance declares it or when any stored map has a negative value (FORMAT.md)."""
        from .reader import measured_negative

        try:
            negative = measured_negative(self.run_dir)
        except SummaryError:  # a damaged details part: keep the declared signs, finish anyway
            return
        for e in self.manifest.get("explainers", []):
            if isinstance(e, dict) and e.get("name") in negative:
                e["has_negative"] = negative[e["name"]]
                e["signed"] = bool(e.get("signed_declared", e.get("signed"))) or negative[e["name"]]
