"""Integrity of committed parts: the commit record a part carries (FORMAT.md) and the lazy
checks readers run before reading a chunk, so that a missing or changed chunk, or one linked
from outside the log directory, is reported as damage instead of being read."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SummaryError
from .format import COMMIT_KEY, arrays_path, part_name, table_path


def commit_record(run_dir: str | Path, part: int) -> dict | None:
    """The commit record of a committed part (FORMAT.md), None for parts written before
    records existed."""
    path = table_path(Path(run_dir), "samples", part)
    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowInvalid, OSError) as e:
        raise SummaryError(f"{path}: part {part} is corrupt ({e}); {redo_hint(part)}") from e
    raw = meta.get(COMMIT_KEY)
    if raw is None:
        return None
    try:
        rec = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SummaryError(f"{path}: part {part} has a corrupt commit record; {redo_hint(part)}") from e
    if not isinstance(rec, dict) or not isinstance(rec.get("files", {}), dict):
        raise SummaryError(f"{path}: part {part} has a corrupt commit record; {redo_hint(part)}")
    return rec


def redo_hint(part: int) -> str:
    """How to recompute a damaged part."""
    return f"delete tables/samples/{part_name(part)}.parquet and finish the run with --resume to recompute it"


def _array_of(rel: str) -> str:
    """``saliency/gradcam/c/0/0/0`` → ``saliency/gradcam``; ``images/zarr.json`` → ``images``."""
    bits = rel.split("/")
    if bits[0] == "saliency" and len(bits) > 2:
        return "/".join(bits[:2])
    return bits[0] if len(bits) > 1 else "(group)"


def verify_arrays(run_dir: str | Path, part: int, array: str | None = None, *, root: str | Path | None = None,
                  rows=None, record: dict | None = None) -> None:
    """Check the files of a part's arrays (``array``: ``images`` or ``saliency/<name>``, or
    all) against the part's commit record: none missing, none changed (size and CRC-32), none
    resolving outside ``root`` (default: the run directory). ``rows`` limits the check to the
    metadata and the chunks holding those rows, i.e. what reading them touches. SummaryError
    names the part and the array otherwise. Parts without a record (older runs) get only the
    symlink check, of every file. ``record``: the part's commit record, if already read."""
    run_dir = Path(run_dir)
    base = arrays_path(run_dir, part)
    bound = Path(root if root is not None else run_dir).resolve()
    rec = commit_record(run_dir, part) if record is None else record
    if not rec:
        check_links(base, part, array, bound)
        return
    if not base.is_dir():
        raise SummaryError(f"{base}: the arrays of committed part {part} are missing; the run directory was "
                           f"damaged; {redo_hint(part)}")
    for rel, expect in rec.get("files", {}).items():
        name = _array_of(rel)
        if (array and name != array) or not _holds(rel, name, rows, rec):
            continue
        f = base / rel
        if not f.resolve().is_relative_to(bound):
            raise SummaryError(f"{f}: part {part}, array {name!r}: resolves outside the log directory; "
                               "refusing to read it")
        try:
            data = f.read_bytes()
        except FileNotFoundError:
            raise SummaryError(f"{run_dir}: part {part}, array {name!r}: chunk file {rel} is missing; the run "
                               f"directory was damaged; {redo_hint(part)}") from None
        except OSError as e:
            raise SummaryError(f"{run_dir}: part {part}, array {name!r}: chunk file {rel} cannot be read "
                               f"({e.strerror or e})") from e
        if [len(data), zlib.crc32(data)] != list(expect):
            raise SummaryError(f"{run_dir}: part {part}, array {name!r}: chunk file {rel} does not match its "
                               f"checksum; the run directory was damaged; {redo_hint(part)}")


def _holds(rel: str, name: str, rows, rec: dict) -> bool:
    """Is ``rel`` metadata, or a chunk of ``name`` holding one of ``rows`` (all when None)?"""
    chunk_rows = (rec.get("chunk_rows") or {}).get(name)
    rest = rel[len(name) + 1:] if rel.startswith(name + "/") else rel
    if rows is None or not chunk_rows or not rest.startswith("c/"):
        return True
    try:
        first = int(rest.split("/")[1])
    except (IndexError, ValueError):
        return True
    return any(int(r) // chunk_rows == first for r in rows)


def check_links(base: Path, part: int, array: str | None, bound: Path) -> None:
    """SummaryError when a part's arrays are missing, or a file or folder under them is a
    symlink leaving ``bound`` (the log directory): nothing outside it is ever read."""
    bound = bound.resolve()
    if not base.is_dir():
        raise SummaryError(f"{base}: the arrays of committed part {part} are missing; the run directory was "
                           f"damaged; {redo_hint(part)}")
    where = base / array if array else base
    if not where.resolve().is_relative_to(bound):
        raise SummaryError(f"{where}: resolves outside the log directory; refusing to read it")
    for f in where.rglob("*") if where.is_dir() else []:
        if f.is_symlink() and not f.resolve().is_relative_to(bound):
            raise SummaryError(f"{f}: part {part}, array {array or _array_of(f.relative_to(base).as_posix())}: "
                               "a link to a file outside the log directory; refusing to read it")
