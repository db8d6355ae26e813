"""Damaged runs read as damaged, never as zeros or a crash; nothing outside the logdir is read
(issue 11, items 4 and 5)."""

import os
import zlib
from pathlib import Path

import pytest

import dash_runs
from xai_core.dashboard import list_runs, open_run
from xai_core.dashboard.render import MapStore
from xai_core.errors import SummaryError
from xai_core.summary import RunReader
from xai_core.summary.manifest import read_manifest, write_manifest


def chunk(run: Path, part: int, explainer: str = "a") -> Path:
    files = sorted((run / "arrays" / f"part-{part:06d}.zarr" / "saliency" / explainer / "c").rglob("*"))
    return next(f for f in files if f.is_file())


def test_commit_record_counts_rows_and_checksums_every_chunk(tmp_path):
    from xai_core.summary.integrity import commit_record

    run = dash_runs.write_synthetic(tmp_path / "r")
    rec = commit_record(run, 1)
    assert rec["rows"]["samples"] == 2 and rec["images"] == 2
    assert rec["rows"]["labels"] == rec["maps"]["a"] == rec["maps"]["b"]
    f = chunk(run, 1)
    rel = f.relative_to(run / "arrays" / "part-000001.zarr").as_posix()
    assert rec["files"][rel] == [f.stat().st_size, zlib.crc32(f.read_bytes())]


@pytest.mark.parametrize("damage", ["missing", "changed"])
def test_a_damaged_chunk_is_reported_not_read_as_zeros(tmp_path, damage):
    run = dash_runs.write_synthetic(tmp_path / "r")
    f = chunk(run, 1)
    if damage == "missing":
        f.unlink()
    else:
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0xFF
        f.write_bytes(bytes(data))
    with pytest.raises(SummaryError, match="part 1, array 'saliency/a'.*(missing|checksum)"):
        RunReader(run).saliency("a", 1, 0)
    assert RunReader(run).saliency("a", 0, 0).any()  # the healthy part still reads
    store = MapStore(run)
    with pytest.raises(SummaryError, match="part 1, array 'saliency/a'"):
        store.saliency("a", 1, 0)
    assert store.image(1, 0).any() and store.saliency("b", 1, 0).any()


def test_a_truncated_table_part_is_reported(tmp_path):
    import pyarrow.parquet as pq

    run = dash_runs.write_synthetic(tmp_path / "r")
    p = run / "tables" / "scores" / "part-000000.parquet"
    pq.write_table(pq.read_table(p).slice(0, 3), p)
    with pytest.raises(SummaryError, match="part 0, table 'scores' does not match its checksum"):
        RunReader(run).scores()


@pytest.mark.parametrize("field, value", [("explainers", None), ("updated", 12345), ("classes", "abc"),
                                          ("progress", {"done_samples": "3"}), ("metrics", [{"name": 3}])])
def test_a_wrong_typed_manifest_is_unreadable_and_healthy_runs_still_list(tmp_path, field, value):
    dash_runs.write_synthetic(tmp_path / "good")
    bad = dash_runs.write_synthetic(tmp_path / "bad")
    m = read_manifest(bad)  # sealed again: the type checks, not the checksum, must catch it
    m[field] = value
    write_manifest(bad, m)
    runs = {r.name: r for r in list_runs(tmp_path)}
    assert runs["good"].status == "complete"
    assert runs["bad"].status == "unreadable" and f"`{field}" in runs["bad"].error
    assert open_run(tmp_path, "good").tables.n_samples == 5
    with pytest.raises(SummaryError, match=f"`{field}"):
        open_run(tmp_path, "bad")


def test_a_latest_symlink_is_listed_once(tmp_path):
    dash_runs.write_synthetic(tmp_path / "run1")
    os.symlink("run1", tmp_path / "latest")
    (tmp_path / "exp").mkdir()
    os.symlink("../run1", tmp_path / "exp" / "alias")
    names = [r.name for r in list_runs(tmp_path)]
    assert names == ["run1"]


def test_a_manifest_symlinked_outside_the_logdir_is_not_read(tmp_path):
    logdir, outside = tmp_path / "logs", tmp_path / "secret"
    dash_runs.write_synthetic(outside)
    run = logdir / "run"
    run.mkdir(parents=True)
    os.symlink(outside / "manifest.json", run / "manifest.json")
    info = next(r for r in list_runs(logdir) if r.name == "run")
    assert info.status == "unreadable" and "outside the log directory" in info.error
    assert not info.explainers and info.model == ""
    with pytest.raises(SummaryError, match="outside the log directory"):
        open_run(logdir, "run")


def test_a_chunk_symlinked_outside_the_run_is_not_read(tmp_path):
    logdir = tmp_path / "logs"
    run = dash_runs.write_synthetic(logdir / "run")
    secret = tmp_path / "secret.bin"
    f = chunk(run, 0)
    secret.write_bytes(f.read_bytes())
    f.unlink()
    os.symlink(secret, f)
    from xai_core.summary.integrity import verify_arrays

    with pytest.raises(SummaryError, match="outside the log directory"):
        verify_arrays(run, 0, "saliency/a")
    opened = open_run(logdir, "run")
    with pytest.raises(SummaryError, match="outside the log directory"):
        opened.store.saliency("a", 0, 0)


def test_a_non_utf8_manifest_is_unreadable(tmp_path):
    dash_runs.write_synthetic(tmp_path / "good")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_bytes(b'{"format_version": 1, "status": "caf\xe9"}')
    runs = {r.name: r for r in list_runs(tmp_path)}
    assert runs["bad"].status == "unreadable" and "corrupt manifest" in runs["bad"].error
    assert runs["good"].status == "complete"


def test_parts_without_a_commit_record_still_read(tmp_path):
    """Runs written before commit records existed: no false alarm, links still checked."""
    import pyarrow.parquet as pq

    run = dash_runs.write_synthetic(tmp_path / "r")
    for p in (run / "tables" / "samples").glob("part-*.parquet"):
        t = pq.read_table(p)
        pq.write_table(t.replace_schema_metadata(None), p)
    expect = dash_runs.synthetic_map(3, RunReader(run).labels().query("sample_index == 3")["label"].iloc[0], "a")
    assert RunReader(run).saliency("a", 1, 0).shape == expect.shape
    assert MapStore(run).saliency("a", 1, 0).shape == expect.shape
    f = chunk(run, 1)
    f.unlink()
    os.symlink(tmp_path / "elsewhere", f)
    with pytest.raises(SummaryError, match="outside the log directory"):
        MapStore(run).saliency("a", 1, 0)


@pytest.mark.parametrize("folder", ["tables", "arrays", "tables/scores"])
def test_a_run_whose_data_is_linked_outside_the_logdir_is_listed_as_unreadable(tmp_path, folder):
    logdir, outside = tmp_path / "logs", tmp_path / "elsewhere"
    run = dash_runs.write_synthetic(logdir / "run")
    dash_runs.write_synthetic(logdir / "good")
    (run / folder).rename(outside)
    os.symlink(outside, run / folder)
    runs = {r.name: r for r in list_runs(logdir)}
    assert runs["good"].status == "complete"
    assert runs["run"].status == "unreadable" and "outside the log directory" in runs["run"].error
    assert runs["run"].status_text.startswith("unreadable: ")
    with pytest.raises(SummaryError, match="outside the log directory"):
        open_run(logdir, "run")


def test_a_lazy_table_of_a_run_replaced_since_loading_reads_empty_but_damage_still_raises(tmp_path):
    """Optional tables are read on first use. When a writer replaced the run in between, the
    loaded version's files are gone: not damage (the page's next load reads the new version).
    The same missing file in a run nobody touched is damage, reported as such."""
    from xai_core.dashboard.tables import RunTables
    from xai_core.summary.format import table_path

    rows = {"sample_index": [0], "label": [0], "layer": [0], "side": [4], "prob": [0.8], "boxes": [[[0, 0, 4, 4]]]}
    run = dash_runs.write_synthetic(tmp_path / "cf", counterfactuals={0: rows})
    t = RunTables.load(run, root=tmp_path)
    table_path(run, "counterfactuals", 0).unlink()                   # damage: the run did not change
    with pytest.raises(SummaryError, match="counterfactuals"):
        t.counterfactuals()
    assert not t.replaced()

    run = dash_runs.write_synthetic(tmp_path / "cf2", counterfactuals={0: rows})
    t = RunTables.load(run, root=tmp_path)
    dash_runs.write_synthetic(run, parts=((0,),))                      # replaced: one part, no counterfactuals
    assert t.parts == (0, 1) and t.replaced() and not table_path(run, "samples", 1).exists()
    assert len(t.counterfactuals()) == 0                                # part 1 (listed at load) is gone
