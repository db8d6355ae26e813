"""Reads run directories written by :mod:`.writer`; migrates old format versions and
refuses newer ones."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from ..errors import FormatVersionError, SummaryError
from .format import FORMAT_VERSION, MANIFEST, SCHEMAS, arrays_path, part_of
from .writer import committed_parts

# version → function turning a manifest of that version into one of version + 1.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {}


def migrate(manifest: dict, path: Path) -> dict:
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise SummaryError(f"{path}: manifest has no integer `format_version`; this is not an xaiboard summary")
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"{path}: written with summary format {version}, newer than this xaiboard reads ({FORMAT_VERSION}); "
            "upgrade xaiboard (pip install -U xaiboard) to open it"
        )
    while version < FORMAT_VERSION:
        if version not in MIGRATIONS:
            raise SummaryError(f"{path}: summary format {version} is too old to migrate; re-run the runner")
        manifest = MIGRATIONS[version](manifest)
        version = manifest["format_version"]
    return manifest


def read_manifest(run_dir: str | Path) -> dict:
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise SummaryError(f"{run_dir}: no {MANIFEST}; not a run directory (or the run has not started)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SummaryError(f"{path}: corrupt manifest ({e.__class__.__name__}: {e})") from e
    if not isinstance(manifest, dict):
        raise SummaryError(f"{path}: corrupt manifest (expected a JSON object)")
    return migrate(manifest, path)


def find_runs(logdir: str | Path, *, max_depth: int = 6) -> list[Path]:
    """Every directory under ``logdir`` (itself included) holding a manifest.json; symlinks
    leaving the logdir are not followed."""
    root = Path(logdir).resolve()
    found = []

    def walk(d: Path, depth: int) -> None:
        if (d / MANIFEST).is_file():
            found.append(d)
            return
        if depth >= max_depth:
            return
        try:
            children = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for c in children:
            if c.resolve().is_relative_to(root):
                walk(c, depth + 1)

    if root.is_dir():
        walk(root, 0)
    return found


def measured_negative(run_dir: str | Path) -> dict[str, bool]:
    """{explainer: whether any committed map has a value < 0}, from the per-map
    ``has_negative`` rows of the details table; explainers without such rows (runs written
    before they existed) are left out."""
    r = RunReader(run_dir)
    d = r.details()
    d = d[d["key"] == "has_negative"]
    return {str(k): bool((v > 0).any()) for k, v in d.groupby("explainer")["value"]}


class RunReader:
    """Lazy access to one run. Tables are read from committed parts only; maps and images
    are read one row at a time, with a small LRU of open part stores."""

    def __init__(self, run_dir: str | Path, *, max_open_parts: int = 64):
        self.run_dir = Path(run_dir)
        self.manifest = read_manifest(self.run_dir)
        self._stores: OrderedDict[int, zarr.Group] = OrderedDict()
        self._max_open = max_open_parts

    # ---- manifest shortcuts ----------------------------------------------------------
    @property
    def status(self) -> str:
        return self.manifest.get("status", "unknown")

    @property
    def classes(self) -> list[str]:
        return list(self.manifest.get("classes", []))

    @property
    def explainers(self) -> list[dict]:
        return list(self.manifest.get("explainers", []))

    @property
    def metrics(self) -> list[dict]:
        return list(self.manifest.get("metrics", []))

    def parts(self) -> list[int]:
        return sorted(committed_parts(self.run_dir))

    # ---- tables ----------------------------------------------------------------------
    def table(self, name: str) -> pd.DataFrame:
        """All committed rows of one table (format.TABLES) as one DataFrame; an optional
        table a run does not have reads as empty."""
        if name not in SCHEMAS:
            raise SummaryError(f"unknown table {name!r}; expected one of {list(SCHEMAS)}")
        done = set(self.parts())
        d = self.run_dir / "tables" / name
        files = sorted(f for f in d.glob("part-*.parquet") if part_of(f) in done) if d.is_dir() else []
        if not files:
            return SCHEMAS[name].empty_table().to_pandas()
        try:
            tabs = [pq.read_table(f, schema=SCHEMAS[name]) for f in files]
        except (pa.ArrowInvalid, OSError) as e:
            raise SummaryError(f"{d}: a part is corrupt ({e}); re-run that part with --resume") from e
        return pa.concat_tables(tabs).to_pandas()

    def samples(self) -> pd.DataFrame:
        return self.table("samples")

    def labels(self) -> pd.DataFrame:
        return self.table("labels")

    def scores(self) -> pd.DataFrame:
        return self.table("scores")

    def details(self) -> pd.DataFrame:
        """Per-pair explainer figures (anchor precision and coverage, IG completeness error);
        empty for runs without them."""
        return self.table("details")

    # ---- arrays ----------------------------------------------------------------------
    def _store(self, part: int) -> zarr.Group:
        g = self._stores.get(part)
        if g is None:
            path = arrays_path(self.run_dir, part)
            if not path.is_dir():
                raise SummaryError(f"{path}: missing arrays of a committed part; the run directory was damaged")
            g = zarr.open_group(str(path), mode="r")
            self._stores[part] = g
            if len(self._stores) > self._max_open:
                self._stores.popitem(last=False)
        else:
            self._stores.move_to_end(part)
        return g

    def image(self, part: int, offset: int) -> np.ndarray:
        """(H, W, 3) uint8, the image as the model saw it (pixel space)."""
        return np.asarray(self._store(part)["images"][int(offset)])

    def saliency(self, explainer: str, part: int, map_offset: int) -> np.ndarray:
        """(H, W) float32 raw map of ``explainer`` for the label row at ``map_offset``."""
        g = self._store(part)
        try:
            arr = g["saliency"][explainer]
        except KeyError:
            raise SummaryError(f"{self.run_dir}: no saliency maps for explainer {explainer!r}") from None
        return np.asarray(arr[int(map_offset)])

    def saliency_part(self, explainer: str, part: int) -> np.ndarray:
        """(m, H, W) float32: every map of ``explainer`` in one part."""
        return np.asarray(self._store(part)["saliency"][explainer][...])

    # ---- object masks (optional) -------------------------------------------------------
    def has_masks(self, part: int) -> bool:
        """Whether the part stores its object masks (runs written before they existed do not)."""
        g = self._store(part)
        return "masks" in g and "has_mask" in g

    def masks_part(self, part: int) -> tuple[np.ndarray, np.ndarray]:
        """((m, H, W) bool, (m,) bool): each label row's object mask (rows in ``map_offset``
        order) and whether the row has one — what the localisation metrics scored against."""
        if not self.has_masks(part):
            raise SummaryError(f"{self.run_dir}: part {part} stores no object masks (written before they were "
                               "stored); re-run it to recompute localisation from the run directory")
        g = self._store(part)
        return np.asarray(g["masks"][...], dtype=bool), np.asarray(g["has_mask"][...], dtype=bool)

    def object_mask(self, part: int, map_offset: int) -> np.ndarray | None:
        """(H, W) bool object mask of the label row at ``map_offset``; None when the label has
        no box or mask."""
        if not self.has_masks(part):
            raise SummaryError(f"{self.run_dir}: part {part} stores no object masks (written before they were stored)")
        g = self._store(part)
        if not bool(g["has_mask"][int(map_offset)]):
            return None
        return np.asarray(g["masks"][int(map_offset)], dtype=bool)

    def signed(self, explainer: str) -> bool:
        """Whether ``explainer``'s maps carry a sign: the manifest's entry (declared by the
        instance, and measured when the run completed), or any committed map with a negative
        value (so a run still being written already answers from what it has)."""
        entry = next((e for e in self.explainers if e.get("name") == explainer), None)
        if entry is None:
            raise SummaryError(f"{self.run_dir}: no explainer {explainer!r}; expected one of "
                               f"{[e.get('name') for e in self.explainers]}")
        return bool(entry.get("signed")) or measured_negative(self.run_dir).get(explainer, False)
