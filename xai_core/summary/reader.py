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
from .integrity import commit_record, redo_hint, verify_arrays  # noqa: F401 (verify_arrays re-exported)
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
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SummaryError(f"{path}: corrupt manifest ({e.__class__.__name__}: {e})") from e
    except OSError as e:
        raise SummaryError(f"{path}: cannot be read ({e.strerror or e})") from e
    if not isinstance(manifest, dict):
        raise SummaryError(f"{path}: corrupt manifest (expected a JSON object)")
    return check_manifest(migrate(manifest, path), path)


def _opt(*types):
    return lambda v: v is None or isinstance(v, types)


def _is(*types):
    return lambda v: isinstance(v, types)


def _list_of(kind):
    return lambda v: isinstance(v, list) and all(isinstance(x, kind) for x in v)


def _count(v) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)


# Types of the manifest keys readers rely on (FORMAT.md). Every key may be absent (older runs);
# a present one of the wrong type makes the run unreadable instead of crashing whoever reads it.
MANIFEST_TYPES = {
    "status": (_is(str), "a string"),
    "error": (_opt(str), "a string or null"),
    "created": (_opt(str), "an ISO-8601 string"),
    "updated": (_opt(str), "an ISO-8601 string"),
    "finished": (_opt(str), "an ISO-8601 string"),
    "xaiboard_version": (_is(str), "a string"),
    "config": (_is(dict), "a map"),
    "model": (_is(dict), "a map"),
    "dataset": (_is(dict), "a map"),
    "classes": (_list_of(str), "a list of strings"),
    "explainers": (_list_of(dict), "a list of maps"),
    "metrics": (_list_of(dict), "a list of maps"),
    "progress": (_is(dict), "a map"),
    "timing": (_opt(dict), "a map"),
    "sanity": (_opt(dict), "a map"),
}
PROGRESS_KEYS = ("total_samples", "done_samples", "total_parts", "done_parts", "batch_size")


def check_manifest(manifest: dict, path: Path) -> dict:
    """``manifest`` when its known keys have the documented types, else SummaryError."""
    for key, (ok, expected) in MANIFEST_TYPES.items():
        if key in manifest and not ok(manifest[key]):
            raise SummaryError(f"{path}: `{key}` is {_short(manifest[key])}; expected {expected}")
    for key in ("explainers", "metrics"):
        for i, e in enumerate(manifest.get(key) or []):
            if not isinstance(e.get("name"), str):
                raise SummaryError(f"{path}: `{key}[{i}].name` is {_short(e.get('name'))}; expected a string")
    for key in PROGRESS_KEYS:
        v = (manifest.get("progress") or {}).get(key)
        if not _count(v):
            raise SummaryError(f"{path}: `progress.{key}` is {_short(v)}; expected a count ≥ 0")
    return manifest


def _short(v) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


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

    def parts(self) -> list[int]:
        return sorted(committed_parts(self.run_dir))

    def verify(self) -> dict:
        """Check every committed part in full (every table's row count, every array file's
        size and CRC-32); SummaryError at the first damage. {parts, without_record}."""
        for name in SCHEMAS:
            self.table(name)
        parts = self.parts()
        bare = 0
        for p in parts:
            rec = commit_record(self.run_dir, p)
            bare += rec is None
            verify_arrays(self.run_dir, p, record=rec or {})
        return {"parts": len(parts), "without_record": bare}

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
        for f, tab in zip(files, tabs):  # row counts against the part's commit record
            part = part_of(f)
            rec = commit_record(self.run_dir, part)
            want = (rec or {}).get("rows", {}).get(name)
            if want is not None and want != tab.num_rows:
                raise SummaryError(f"{f}: part {part} of table {name!r} has {tab.num_rows} rows; its commit record "
                                   f"says {want}; the run directory was damaged; {redo_hint(part)}")
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
