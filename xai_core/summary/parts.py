"""The committed parts of a run and their tables, read with the checks of their commit
records (FORMAT.md). Reader and writer both need them (the writer recounts progress and
measures the maps' signs when a run completes), so they live here, below both."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SummaryError
from .format import SCHEMAS, part_of, table_path
from .integrity import commit_record, redo_hint, table_bytes


def committed_parts(run_dir: str | Path) -> set[int]:
    """Parts whose samples table exists: a part exists exactly when it does (FORMAT.md)."""
    d = Path(run_dir) / "tables" / "samples"
    if not d.is_dir():
        return set()
    return {p for f in d.glob("part-*.parquet") if (p := part_of(f)) is not None}


def table_parts(run_dir: str | Path, name: str, parts, records: dict | None = None) -> list[int]:
    """Those of ``parts`` (committed) that hold table ``name``: its file exists, or the part's
    commit record lists it (then a missing file is damage). ``records``: a {part: commit
    record} cache to use and fill."""
    run_dir, records = Path(run_dir), ({} if records is None else records)
    out = []
    for part in sorted(parts):
        if part not in records:
            records[part] = commit_record(run_dir, part)
        listed = name == "samples" or name in ((records[part] or {}).get("tables") or {})
        if listed or table_path(run_dir, name, part).exists():
            out.append(part)
    return out


def check_table_files(run_dir: str | Path, name: str, parts, records: dict | None = None) -> list[int]:
    """Check the files of table ``name`` in ``parts`` against their commit records (size and
    CRC-32); SummaryError naming the part at the first damage. Returns the parts that hold
    the table (:func:`table_parts`)."""
    records = {} if records is None else records
    have = table_parts(run_dir, name, parts, records)
    for part in have:
        table_bytes(run_dir, name, part, records[part])
    return have


def read_table(run_dir: str | Path, name: str, parts=None, *, records: dict | None = None) -> pa.Table:
    """Every committed row of table ``name`` (format.TABLES), part by part in part order, each
    part's file checked against its commit record (checksum, row count); an optional table a
    run lacks reads as empty. ``parts``: the committed parts, if already listed; ``records``:
    a {part: commit record} cache to use and fill."""
    if name not in SCHEMAS:
        raise SummaryError(f"unknown table {name!r}; expected one of {list(SCHEMAS)}")
    run_dir = Path(run_dir)
    records = {} if records is None else records
    tabs = []
    for part in table_parts(run_dir, name, committed_parts(run_dir) if parts is None else parts, records):
        rec, path = records[part], table_path(run_dir, name, part)
        data = table_bytes(run_dir, name, part, rec)
        try:
            tab = pq.read_table(pa.BufferReader(data), schema=SCHEMAS[name])
        except (pa.ArrowInvalid, OSError) as e:
            raise SummaryError(f"{path}: part {part} of table {name!r} is corrupt ({e}); {redo_hint(part)}") from e
        want = (rec or {}).get("rows", {}).get(name)
        if want is not None and want != tab.num_rows:
            raise SummaryError(f"{path}: part {part} of table {name!r} has {tab.num_rows} rows; its commit record "
                               f"says {want}; the run directory was damaged; {redo_hint(part)}")
        tabs.append(tab)
    return pa.concat_tables(tabs) if tabs else SCHEMAS[name].empty_table()


def measured_negative(run_dir: str | Path) -> dict[str, bool]:
    """{explainer: whether any committed map has a value < 0}, from the per-map
    ``has_negative`` rows of the details table; explainers without such rows (runs written
    before they existed) are left out."""
    d = read_table(run_dir, "details").to_pandas()
    d = d[d["key"] == "has_negative"]
    return {str(k): bool((v > 0).any()) for k, v in d.groupby("explainer")["value"]}
