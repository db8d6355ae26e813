"""Writes a run directory incrementally: one committed *part* per batch.

A part is committed by writing its arrays and its labels/scores tables first and its samples
table last, each by an atomic rename; readers and ``--resume`` treat a part as present only
when its samples table exists. A crash therefore loses at most the part in flight, and a
re-run of that part overwrites whatever half of it was left behind.

The samples table also carries the part's *commit record* (row counts, the size and CRC-32 of
every other table file and of every file of its arrays, taken after they were fsynced, and what
computed the part), and a CRC-32 of its own bytes, so a reader can tell a damaged part from a
valid one instead of reading a missing chunk as zeros or a flipped bit as a number.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from ..errors import SummaryError
from .format import COMMIT_KEY, FORMAT_VERSION, MANIFEST, SCHEMAS, arrays_path, atomic_write_bytes, table_path
from .integrity import SELF_KEY, SELF_PLACEHOLDER, seal_table
from .manifest import read_manifest, write_manifest
from .parts import committed_parts, measured_negative  # noqa: F401 (committed_parts re-exported)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _table_bytes(rows: dict, table: str, metadata: dict | None = None) -> bytes:
    schema = SCHEMAS[table]
    if metadata:
        schema = schema.with_metadata(metadata)
    n = len(next(iter(rows.values()))) if rows else 0
    # Optional columns (e.g. uncertainty) may be left out: they are stored as nulls.
    rows = {f.name: rows.get(f.name, [None] * n) for f in schema}
    tab = pa.Table.from_pydict(rows, schema=schema)
    buf = io.BytesIO()
    # Page checksums serve other Parquet readers; ours check the whole file (integrity.py).
    pq.write_table(tab, buf, compression="zstd", write_page_checksum=True)
    return buf.getvalue()


def file_checksums(root: Path) -> dict[str, list[int]]:
    """{relative path: [size, crc32]} of every file under ``root``, each fsynced first."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            with open(path, "rb") as f:
                data = f.read()
                os.fsync(f.fileno())
            out[path.relative_to(root).as_posix()] = [len(data), zlib.crc32(data)]
    return out


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_arrays(run_dir: Path, part: int, images: np.ndarray, saliency: dict[str, np.ndarray],
                  masks: np.ndarray | None = None, has_mask: np.ndarray | None = None) -> tuple[dict, dict]:
    """Write the part's zarr group (under a temporary name, then renamed); returns the
    checksums of its files and the rows per chunk of its arrays."""
    final = arrays_path(run_dir, part)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        sums = _write_group(tmp, images, saliency, masks, has_mask)
        chunk_rows = _chunk_rows_of(tmp)
        if final.exists():  # left over from a crashed attempt at this part
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a stale .tmp (e.g. on a full disk)
        raise
    _fsync_dir(final.parent)
    return sums, chunk_rows


def _chunk_rows_of(group_path: Path) -> dict[str, int]:
    """{array path in the group: rows per chunk}, for every array the group holds (so an array
    added later is covered by the commit record without touching this module)."""
    group = zarr.open_group(str(group_path), mode="r")
    return {path: int(node.chunks[0]) for path, node in group.members(max_depth=None)
            if isinstance(node, zarr.Array) and node.ndim}


def _write_group(tmp: Path, images: np.ndarray, saliency: dict[str, np.ndarray],
                 masks: np.ndarray | None = None, has_mask: np.ndarray | None = None) -> dict:
    group = zarr.open_group(str(tmp), mode="w")
    n = images.shape[0]
    arr = group.create_array("images", shape=images.shape, dtype="uint8", chunks=(_chunk_rows(n), *images.shape[1:]))
    arr[...] = images
    sal = group.require_group("saliency")
    for name, maps in saliency.items():
        maps = np.ascontiguousarray(maps, dtype=np.float32)
        a = sal.create_array(name, shape=maps.shape, dtype="float32", chunks=(_chunk_rows(maps.shape[0]), *maps.shape[1:]))
        a[...] = maps
    if masks is not None:  # optional: the object masks the localisation metrics scored against
        masks = np.ascontiguousarray(masks, dtype=bool)
        m = group.create_array("masks", shape=masks.shape, dtype="bool", chunks=(_chunk_rows(masks.shape[0]), *masks.shape[1:]))
        m[...] = masks
        has = np.asarray(has_mask if has_mask is not None else masks.reshape(len(masks), -1).any(axis=1), dtype=bool)
        group.create_array("has_mask", shape=has.shape, dtype="bool", chunks=(max(has.shape[0], 1),))[...] = has
    # Chunks reach the disk before the samples table commits the part (FORMAT.md).
    return file_checksums(tmp)


def write_part(run_dir: str | Path, part: int, *, samples: dict, labels: dict, scores: dict,
               images: np.ndarray, saliency: dict[str, np.ndarray], counterfactuals: dict | None = None,
               details: dict | None = None, masks: np.ndarray | None = None,
               has_mask: np.ndarray | None = None, backend: dict | None = None) -> None:
    """Commit one part. ``samples``/``labels``/``scores`` are column dicts matching the
    schemas in format.py; images (n, H, W, 3) uint8; saliency {explainer: (m, H, W) float32}
    with m = number of label rows; optional ``masks`` (m, H, W) bool, each label row's object
    mask, with ``has_mask`` (m,) bool saying which rows have one; ``backend``: what computed
    the part (recorded in its commit record). Safe to call from several processes on distinct
    parts."""
    run_dir = Path(run_dir)
    files, chunk_rows = _write_arrays(run_dir, part, images, saliency, masks, has_mask)
    rows, sums = {}, {}
    for name, cols in (("counterfactuals", counterfactuals), ("details", details), ("scores", scores),
                       ("labels", labels)):
        if cols is not None:  # counterfactuals and details are optional (format.OPTIONAL_TABLES)
            data = _table_bytes(cols, name)
            atomic_write_bytes(table_path(run_dir, name, part), data)
            rows[name], sums[name] = _n_rows(cols), [len(data), zlib.crc32(data)]
    rows["samples"] = _n_rows(samples)
    record = {"rows": rows, "images": int(images.shape[0]), "chunk_rows": chunk_rows,
              "maps": {k: int(v.shape[0]) for k, v in saliency.items()}, "files": files, "tables": sums}
    if backend is not None:
        record["backend"] = backend
    meta = {COMMIT_KEY: json.dumps(record).encode(), SELF_KEY: SELF_PLACEHOLDER}
    atomic_write_bytes(table_path(run_dir, "samples", part), seal_table(_table_bytes(samples, "samples", meta)))


def _chunk_rows(n: int) -> int:
    # Chunks of a few rows: one map is read without decoding the whole part.
    return min(8, max(int(n), 1))


def _n_rows(cols: dict) -> int:
    return len(next(iter(cols.values()))) if cols else 0


def remove_temporaries(run_dir: str | Path) -> int:
    """Delete what interrupted writers left behind (``.part-*.tmp*`` files and folders);
    only call while holding the run lock, before any worker starts. Returns how many."""
    run_dir, n = Path(run_dir), 0
    for pattern in ("arrays/.part-*.zarr.tmp-*", "tables/*/.part-*.tmp", f".{MANIFEST}.*.tmp"):
        for p in run_dir.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            n += 1
    return n


def make_run_dir(run_dir: Path) -> None:
    """``mkdir -p`` with one-line errors (a file in the way, a read-only filesystem)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        raise SummaryError(f"output {str(run_dir)!r}: {e.filename or run_dir} is a file; expected a directory "
                           "(choose another --out)") from e
    except OSError as e:
        raise SummaryError(f"output {str(run_dir)!r} cannot be created: {e.strerror or e}") from e
    if not run_dir.is_dir():
        raise SummaryError(f"output {str(run_dir)!r} is a file; expected a directory (choose another --out)")


class RunWriter:
    """Owns the manifest of one run: creation, progress, final status."""

    def __init__(self, run_dir: str | Path, manifest: dict):
        self.run_dir = Path(run_dir)
        self.manifest = manifest
        self._last_flush = 0.0

    @classmethod
    def create(cls, run_dir: str | Path, manifest: dict, *, overwrite: bool = False) -> "RunWriter":
        run_dir = Path(run_dir)
        has_run = (run_dir / MANIFEST).is_file()
        if has_run and not overwrite:
            raise SummaryError(
                f"{run_dir} already holds a run; use --resume {run_dir} to finish it, or --overwrite to replace it"
            )
        if not has_run and any((run_dir / sub).exists() for sub in ("tables", "arrays")):
            # --overwrite only ever deletes a run: tables/ or arrays/ without a manifest are not ours.
            raise SummaryError(f"{run_dir} holds tables/ or arrays/ but no {MANIFEST}, so it is not an xaiboard "
                               "run; refusing to write into it (choose another --out)")
        stamp = now_iso()
        manifest = {"format_version": FORMAT_VERSION, "status": "running", "created": stamp,
                    "updated": stamp, "error": None, **manifest}
        w = cls(run_dir, manifest)
        if has_run:
            # The new manifest ("running") first, then the old parts go: a reader in between
            # sees a run being written, not a finished run whose tables vanish (issue 18).
            w.flush(force=True)
            for sub in ("tables", "arrays"):
                shutil.rmtree(run_dir / sub, ignore_errors=True)
        make_run_dir(run_dir)
        w.flush(force=True)
        return w

    @classmethod
    def reopen(cls, run_dir: str | Path) -> "RunWriter":
        run_dir = Path(run_dir)
        manifest = read_manifest(run_dir)
        if not isinstance(manifest.get("progress"), dict):
            raise SummaryError(f"{run_dir / MANIFEST}: no `progress` section; cannot resume this run")
        manifest["status"] = "running"
        manifest["error"] = None
        w = cls(run_dir, manifest)
        w.flush(force=True)
        return w

    def flush(self, *, force: bool = False) -> None:
        # The dashboard polls the manifest; a write per second at most is plenty.
        if force or time.monotonic() - self._last_flush > 1.0:
            self.manifest["updated"] = now_iso()
            try:
                write_manifest(self.run_dir, self.manifest)
            except OSError as e:
                raise SummaryError(f"{self.run_dir / MANIFEST}: cannot be written ({e.strerror or e})") from e
            self._last_flush = time.monotonic()

    def progress(self, done_samples: int, done_parts: int, *, force: bool = False, **extra) -> None:
        self.manifest["progress"].update(done_samples=done_samples, done_parts=done_parts, **extra)
        self.flush(force=force)

    def finish(self, status: str, error: str | None = None, **extra) -> None:
        self.manifest["status"] = status
        self.manifest["error"] = error
        self.manifest["finished"] = now_iso()
        self.manifest.update(extra)
        if status == "complete":
            self._record_measured_signs()
        self.flush(force=True)

    def _record_measured_signs(self) -> None:
        """Each explainer entry's ``signed`` becomes what its maps are: signed when the
        instance declares it or when any stored map has a negative value (FORMAT.md)."""
        try:
            negative = measured_negative(self.run_dir)
        except SummaryError:  # a damaged details part: keep the declared signs, finish anyway
            return
        for e in self.manifest.get("explainers", []):
            if isinstance(e, dict) and e.get("name") in negative:
                e["has_negative"] = negative[e["name"]]
                e["signed"] = bool(e.get("signed_declared", e.get("signed"))) or negative[e["name"]]
