"""The columnar view of a run (xai_core.dashboard.tables) on runs with known values."""

import os

import numpy as np
import pytest

import dash_runs
from xai_core.dashboard import RunTables, open_run
from xai_core.errors import FormatVersionError, SummaryError


def test_rows_are_grouped_per_sample(synth_tables):
    t = synth_tables
    assert t.n_samples == 5 and len(t.labels) == sum(len(v) for v in dash_runs.LABELS.values())
    for pos in range(5):
        rows = t.label_rows(pos)
        assert rows["label"].tolist() == [l for l, *_ in dash_runs.LABELS[pos]]
        assert rows["tag"].tolist() == [g for _, _, g, _ in dash_runs.LABELS[pos]]


def test_pair_values_align_scores_to_label_rows(synth_tables):
    t = synth_tables
    a = t.pair_values("a", "m1")
    b = t.pair_values("b", "m1")
    for lrow, (s, l) in enumerate(zip(t.labels["sample_index"], t.labels["label"])):
        np.testing.assert_equal([a[lrow], b[lrow]], dash_runs.M1[(s, l)])
    # label-agnostic: one value per image, broadcast to each of its labels (score = 1 − raw)
    m2 = t.pair_values("a", "m2")
    np.testing.assert_allclose(m2, [1 - dash_runs.M2[s][0] for s in t.labels["sample_index"]])
    assert not m2.flags.writeable


def test_predicted_class_and_boxes(synth_tables):
    t = synth_tables
    assert t.predicted_class().tolist() == [0, 1, 2, 1, 0]
    assert t.boxes(0) == [(0, 1.0, 1.0, 4.0, 4.0)] and t.boxes(1) == []
    assert t.gt_labels(2) == [0]


def test_uncertainty_only_when_stored(tmp_path, synth_tables):
    assert not synth_tables.has_uncertainty
    run = dash_runs.write_synthetic(tmp_path / "u", prob_std=True)
    t = RunTables.load(run, root=tmp_path)
    assert t.has_uncertainty and t.labels["prob_std"].notna().all()


def test_corrupt_part_is_a_clear_error(dash_logdir):
    with pytest.raises(SummaryError, match=r"part-000001.*(corrupt|checksum).*--resume"):
        open_run(dash_logdir, "broken/corrupt_part")


def test_newer_format_is_refused(dash_logdir):
    with pytest.raises(FormatVersionError, match="upgrade"):
        RunTables.load(dash_logdir / "broken" / "newer", root=dash_logdir)


def test_table_symlinked_outside_the_logdir_is_refused(tmp_path):
    logdir = tmp_path / "logs"
    run = dash_runs.write_synthetic(logdir / "r")
    secret = tmp_path / "secret.parquet"
    f = run / "tables" / "scores" / "part-000000.parquet"
    os.replace(f, secret)
    os.symlink(secret, f)
    with pytest.raises(SummaryError, match="outside the log directory"):
        RunTables.load(run, root=logdir)


def test_partial_run_reads_committed_parts_only(tmp_path):
    run = dash_runs.write_synthetic(tmp_path / "r")
    (run / "tables" / "samples" / "part-000001.parquet").unlink()  # part 1 not committed
    t = RunTables.load(run, root=tmp_path)
    assert t.samples["sample_index"].tolist() == [0, 1, 2]
    assert set(t.labels["sample_index"]) == {0, 1, 2} and set(t.scores["pos"]) == {0, 1, 2}
