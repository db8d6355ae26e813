"""Reads run directories written by :mod:`.writer`: lazy access to one run's tables, maps and
images, and the runs under a log directory. Manifests (with the migration of older format
versions and the refusal of newer ones) are read by :mod:`.manifest`, committed parts by
:mod:`.parts`; the writer uses those too, never this module."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from ..errors import SummaryError
from .format import MANIFEST, SCHEMAS, arrays_path
from .integrity import commit_record, verify_arrays
from .steps import check_step, step_entries, step_numbers, step_path
# Re-exported: callers read manifests and parts through the reader.
from .manifest import read_manifest  # noqa: F401
from .parts import committed_parts, measured_negative, read_table  # noqa: F401


def find_runs(logdir: str | Path, *, max_depth: int = 6) -> list[Path]:
    """Every directory under ``logdir`` (itself included) holding a manifest.json, once per
    real directory: a symlink such as ``latest`` to a run listed under its own name is dropped
    (the real name wins). Symlinks leaving the logdir are not followed."""
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
    # Real paths before linked ones, then first come: one entry per resolved directory.
    best: dict[Path, Path] = {}
    for d in sorted(found, key=lambda d: d.resolve() != d.absolute()):
        best.setdefault(d.resolve(), d)
    keep = set(best.values())
    return [d for d in found if d in keep]


class RunReader:
    """Lazy access to one run. Tables are read from committed parts only; maps and images
    are read one row at a time, with a small LRU of open part stores.

    A run of several steps (FORMAT.md "Steps") is read at one ``step`` (None: the newest):
    ``run_dir`` and ``manifest`` are then that step's directory and manifest, ``root`` and
    ``run_manifest`` the run's; ``steps`` lists the run's steps."""

    def __init__(self, run_dir: str | Path, *, step: int | None = None, max_open_parts: int = 64):
        self.root = Path(run_dir)
        self.run_manifest = read_manifest(self.root)
        self.run_dir = step_path(self.root, step, self.run_manifest)
        self.manifest = self.run_manifest if self.run_dir == self.root else read_manifest(self.run_dir)
        self.step = int(self.manifest.get("step") or 0) if step is None else int(step)
        self._stores: OrderedDict[int, zarr.Group] = OrderedDict()
        self._records: dict[int, dict | None] = {}
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

    @property
    def steps(self) -> list[int]:
        """The run's committed steps, in order ([0] for a run of one step at its root)."""
        return step_numbers(self.run_manifest)

    def at(self, step: int) -> "RunReader":
        """A reader of the same run at ``step``."""
        return RunReader(self.root, step=step, max_open_parts=self._max_open)

    def parts(self) -> list[int]:
        return sorted(committed_parts(self.run_dir))

    def verify(self) -> dict:
        """:meth:`verify_step` of every committed step (each step's manifest also against the
        checksum the run's manifest committed it with); the counts are summed, plus ``steps``."""
        read_manifest(self.root)
        total = {"parts": 0, "without_record": 0, "without_table_checksums": 0}
        entries = step_entries(self.run_manifest)
        for e in entries:
            path = check_step(self.root, e)
            got = (self if path == self.run_dir else RunReader(path)).verify_step()
            total = {k: total[k] + got[k] for k in total}
        return {**total, "steps": len(entries)}

    def verify_step(self) -> dict:
        """Check every file of the run in full: the manifest's checksum, every table file
        against its part's commit record (size, CRC-32, row count), every array file (size,
        CRC-32); SummaryError at the first damage. {parts, without_record (parts written
        before commit records existed), without_table_checksums (before format 2)}."""
        read_manifest(self.run_dir)
        records: dict[int, dict | None] = {}
        parts = self.parts()
        for name in SCHEMAS:
            read_table(self.run_dir, name, parts, records=records)
        for p in parts:
            verify_arrays(self.run_dir, p, record=records[p] or {})
        return {"parts": len(parts), "without_record": sum(records[p] is None for p in parts),
                "without_table_checksums": sum(records[p] is not None and "tables" not in records[p] for p in parts)}

    # ---- tables ----------------------------------------------------------------------
    def table(self, name: str) -> pd.DataFrame:
        """All committed rows of one table (format.TABLES) as one DataFrame; an optional
        table a run does not have reads as empty."""
        return read_table(self.run_dir, name, self.parts(), records=self._records).to_pandas()

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

    def _check(self, part: int, array: str, rows) -> None:
        """A missing or changed chunk is damage, never zeros (the part's commit record)."""
        if part not in self._records:
            self._records[part] = commit_record(self.run_dir, part)
        verify_arrays(self.run_dir, part, array, rows=rows, record=self._records[part] or {})

    def image(self, part: int, offset: int) -> np.ndarray:
        """(H, W, 3) uint8, the image as the model saw it (pixel space)."""
        g = self._store(part)
        self._check(part, "images", [offset])
        return np.asarray(g["images"][int(offset)])

    def saliency(self, explainer: str, part: int, map_offset: int) -> np.ndarray:
        """(H, W) float32 raw map of ``explainer`` for the label row at ``map_offset``."""
        g = self._store(part)
        try:
            arr = g["saliency"][explainer]
        except KeyError:
            raise SummaryError(f"{self.run_dir}: no saliency maps for explainer {explainer!r}") from None
        self._check(part, f"saliency/{explainer}", [map_offset])
        return np.asarray(arr[int(map_offset)])

    def saliency_part(self, explainer: str, part: int) -> np.ndarray:
        """(m, H, W) float32: every map of ``explainer`` in one part."""
        g = self._store(part)
        self._check(part, f"saliency/{explainer}", None)
        return np.asarray(g["saliency"][explainer][...])

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
        self._check(part, "masks", None)
        self._check(part, "has_mask", None)
        return np.asarray(g["masks"][...], dtype=bool), np.asarray(g["has_mask"][...], dtype=bool)

    def object_mask(self, part: int, map_offset: int) -> np.ndarray | None:
        """(H, W) bool object mask of the label row at ``map_offset``; None when the label has
        no box or mask."""
        if not self.has_masks(part):
            raise SummaryError(f"{self.run_dir}: part {part} stores no object masks (written before they were stored)")
        g = self._store(part)
        self._check(part, "has_mask", None)
        if not bool(g["has_mask"][int(map_offset)]):
            return None
        self._check(part, "masks", [map_offset])
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
