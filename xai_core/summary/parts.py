"""The committed parts of a run and their tables, read with the checks of their commit
records (FORMAT.md). Reader and writer both need them (the writer recounts progress and
measures the maps' signs when a run completes), so they live here, below both."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SummaryError
from .format import SCHEMAS, part_of
from .integrity import commit_record, redo_hint


def committed_parts(run_dir: str | Path) -> set[int]:
    """Parts whose samples table exists: a part exists exactly when it does (FORMAT.md)."""
    d = Path(run_dir) / "tables" / "samples"
    if not d.is_dir():
        return set()
    return {p for f in d.glob("part-*.parquet") if (p := part_of(f)) is not None}


def read_table(run_dir: str | Path, name: str, parts=None) -> pa.Table:
    """Every committed row of table ``name`` (format.TABLES), part by part in part order, each
    part checked against its commit record; an optional table a run lacks reads as empty.
    ``parts``: the committed parts, if already listed."""
    if name not in SCHEMAS:
        raise SummaryError(f"unknown table {name!r}; expected one of {list(SCHEMAS)}")
    run_dir = Path(run_dir)
    done = set(committed_parts(run_dir) if parts is None else parts)
    d = run_dir / "tables" / name
    files = sorted(f for f in d.glob("part-*.parquet") if part_of(f) in done) if d.is_dir() else []
    if not files:
        return SCHEMAS[name].empty_table()
    try:
        tabs = [pq.read_table(f, schema=SCHEMAS[name]) for f in files]
    except (pa.ArrowInvalid, OSError) as e:
        raise SummaryError(f"{d}: a part is corrupt ({e}); re-run that part with --resume") from e
    for f, tab in zip(files, tabs):  # row counts against the part's commit record
        part = part_of(f)
        rec = commit_record(run_dir, part)
        want = (rec or {}).get("rows", {}).get(name)
        if want is not None and want != tab.num_rows:
            raise SummaryError(f"{f}: part {part} of table {name!r} has {tab.num_rows} rows; its commit record "
                               f"says {want}; the run directory was damaged; {redo_hint(part)}")
    return pa.concat_tables(tabs)


def measured_negative(run_dir: str | Path) -> dict[str, bool]:
    """{explainer: whether any committed map has a value < 0}, from the per-map
    ``has_negative`` rows of the details table; explainers without such rows (runs written
    before they existed) are left out."""
    d = read_table(run_dir, "details").to_pandas()
    d = d[d["key"] == "has_negative"]
    return {str(k): bool((v > 0).any()) for k, v in d.groupby("explainer")["value"]}
