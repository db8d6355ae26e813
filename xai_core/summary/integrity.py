"""Integrity of committed parts: the commit record a part carries (FORMAT.md) and the checks
readers run before reading a table or a chunk, so that a missing or changed file, or one
linked from outside the log directory, is reported as damage instead of being read.

Every file of a part is covered: the zarr files and the other tables by size and CRC-32 in the
commit record, and the samples table that holds the record by a CRC-32 of its own bytes,
written into its Parquet key-value metadata (``xaiboard.crc32``) after the file was encoded."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SummaryError
from .format import COMMIT_KEY, arrays_path, part_name, table_path

#: Key of the samples table's own checksum: 8 lowercase hex digits, the CRC-32 of the file
#: with those digits written as ``SELF_PLACEHOLDER``.
SELF_KEY = b"xaiboard.crc32"
SELF_PLACEHOLDER = b"00000000"
# How Parquet's footer (Thrift compact protocol) holds the pair: a binary field 1 (the key,
# length-prefixed), then binary field 2 of 8 bytes (the value), then the struct's end.
_SLOT = b"\x18" + bytes([len(SELF_KEY)]) + SELF_KEY + b"\x18\x08"
_HEX = re.compile(rb"[0-9a-f]{8}")


def seal_table(data: bytes) -> bytes:
    """Parquet bytes written with ``{SELF_KEY: SELF_PLACEHOLDER}`` metadata, with the
    placeholder replaced by the file's CRC-32."""
    at = data.find(_SLOT + SELF_PLACEHOLDER + b"\x00")
    if at < 0 or data.count(_SLOT) != 1:  # pragma: no cover - a change of pyarrow's footer layout
        raise SummaryError("cannot seal a table part: its checksum slot is missing from the Parquet footer")
    at += len(_SLOT)
    return data[:at] + b"%08x" % zlib.crc32(data) + data[at + 8:]


def self_checksum(data: bytes) -> bool | None:
    """Whether sealed Parquet bytes match their own checksum; None when they have no slot
    (parts written before format 2)."""
    n = data.count(_SLOT)
    if n == 0:
        return None
    at = data.find(_SLOT) + len(_SLOT)
    stored = data[at:at + 8]
    if n > 1 or data[at + 8:at + 9] != b"\x00" or not _HEX.fullmatch(stored):
        return False
    return zlib.crc32(data[:at] + SELF_PLACEHOLDER + data[at + 8:]) == int(stored, 16)


def commit_record(run_dir: str | Path, part: int) -> dict | None:
    """The commit record of a committed part (FORMAT.md), after checking the samples file's
    own checksum; None for parts written before records existed."""
    path = table_path(Path(run_dir), "samples", part)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SummaryError(f"{path}: part {part} cannot be read ({e.strerror or e}); {redo_hint(part)}") from e
    sealed = self_checksum(data)
    if sealed is False:
        raise SummaryError(f"{path}: part {part}, table 'samples' does not match its checksum; the run directory "
                           f"was damaged; {redo_hint(part)}")
    try:
        meta = pq.read_schema(pa.BufferReader(data)).metadata or {}
    except (pa.ArrowInvalid, OSError) as e:
        raise SummaryError(f"{path}: part {part} is corrupt ({e}); {redo_hint(part)}") from e
    raw = meta.get(COMMIT_KEY)
    if raw is None:
        if sealed:  # a sealed part always has a record
            raise SummaryError(f"{path}: part {part} has no commit record; {redo_hint(part)}")
        return None
    try:
        rec = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SummaryError(f"{path}: part {part} has a corrupt commit record; {redo_hint(part)}") from e
    if not isinstance(rec, dict) or not isinstance(rec.get("files", {}), dict) \
            or not isinstance(rec.get("tables", {}), dict):
        raise SummaryError(f"{path}: part {part} has a corrupt commit record; {redo_hint(part)}")
    if sealed is None and "tables" in rec:  # format 2 records come with the file's own checksum
        raise SummaryError(f"{path}: part {part}, table 'samples' has lost its checksum; the run directory was "
                           f"damaged; {redo_hint(part)}")
    return rec


def table_bytes(run_dir: str | Path, name: str, part: int, record: dict | None) -> bytes:
    """The bytes of table ``name``'s file of ``part``, checked against the part's commit
    record (size and CRC-32; the samples file against its own checksum, which
    :func:`commit_record` checked). Parts without table checksums (before format 2) are read
    unchecked."""
    path = table_path(Path(run_dir), name, part)
    sums = (record or {}).get("tables")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if sums is not None and name in sums:
            raise SummaryError(f"{path}: part {part}, table {name!r} is missing; the run directory was damaged; "
                               f"{redo_hint(part)}") from None
        # Listed a moment ago (the samples file holds the commit record): removed since, by a
        # writer replacing the run, or by damage; a reader retries or reports it, never a traceback.
        raise SummaryError(f"{path}: part {part}, table {name!r} vanished while it was read (the run is being "
                           f"rewritten, or its directory was damaged); {redo_hint(part)}") from None
    except OSError as e:
        raise SummaryError(f"{path}: part {part}, table {name!r} cannot be read ({e.strerror or e})") from e
    if name == "samples":
        sealed = self_checksum(data)
        if sealed is False or (sums is not None and sealed is None):
            raise SummaryError(f"{path}: part {part}, table 'samples' does not match its checksum; the run "
                               f"directory was damaged; {redo_hint(part)}")
        return data
    if sums is None:
        return data
    if [len(data), zlib.crc32(data)] != list(sums.get(name) or ()):
        what = "does not match its checksum" if name in sums else "is not part of its commit record"
        raise SummaryError(f"{path}: part {part}, table {name!r} {what}; the run directory was damaged; "
                           f"{redo_hint(part)}")
    return data


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
