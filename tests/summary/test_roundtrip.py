"""The runner writes a run; the reader returns the same arrays, tables and scores."""

import json

import numpy as np
import pytest
import torch

from toy import toy_config
from xai_core.config import config_from_dict
from xai_core.data import ManifestDataset, prepare_batch
from xai_core.errors import FormatVersionError, SummaryError
from xai_core.explainers import EXPLAINERS
from xai_core.models import ModelSpec, load_model
from xai_core.runner import run
from xai_core.summary import FORMAT_VERSION, RunReader, find_runs


@pytest.fixture
def toy_run(toy_data, tmp_path):
    cfg = config_from_dict(toy_config(toy_data, tmp_path / "run"))
    run(cfg, cfg.out, progress=False)
    return cfg


def test_round_trip_arrays_and_scores(toy_run, toy_data):
    r = RunReader(toy_run.out)
    assert r.manifest["format_version"] == FORMAT_VERSION and r.status == "complete"
    samples, labels, scores = r.samples(), r.labels(), r.scores()
    assert len(samples) == 12 and samples["sample_index"].tolist() == list(range(12))

    # Images are stored in pixel space, exactly as prepared.
    ds = ManifestDataset(toy_data)
    batch = prepare_batch(ds, list(range(12)), (32, 32))
    for _, s in samples.iterrows():
        assert np.array_equal(r.image(s.part, s.offset), batch.display[s.sample_index])

    # Maps equal a direct call of the explainer on the same pair: raw scale and sign kept.
    model = load_model(ModelSpec(**{**toy_run.model.__dict__}), 3)
    ig = EXPLAINERS.get("integrated_gradients")({"steps": 16})
    row = labels.iloc[0]
    expect = ig.explain(model, batch.pixels[[row.sample_index]], [row.label])[0].numpy()
    got = r.saliency("integrated_gradients", row.part, row.map_offset)
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)
    # Raw scale kept (no per-map min-max): IG maps still sum to the logit gap (completeness).
    x = batch.pixels[[row.sample_index]]
    gap = float((model(x) - model(torch.zeros_like(x)))[0, row.label])
    assert got.sum() == pytest.approx(gap, rel=0.02)

    # Long-form scores: one per (pair, explainer, metric); normalised within [0, 1].
    assert len(scores) == len(labels) * 4 * 4
    finite = scores[np.isfinite(scores["score"])]
    assert finite["score"].between(0, 1).all()
    assert (scores["explainer"].unique().tolist() == ["gradient", "gradcam", "integrated_gradients", "random"])


def test_probs_and_tags_stored(toy_run):
    r = RunReader(toy_run.out)
    samples, labels = r.samples(), r.labels()
    for _, lab in labels.iterrows():
        probs = samples.set_index("sample_index").loc[lab.sample_index, "probs"]
        assert probs[lab.label] == pytest.approx(lab.prob, abs=1e-6)
        gt = lab.label in samples.set_index("sample_index").loc[lab.sample_index, "gt_labels"]
        assert lab.is_gt == gt


def test_newer_format_is_refused(toy_run):
    path = toy_run.out + "/manifest.json"
    man = json.loads(open(path).read())
    man["format_version"] = FORMAT_VERSION + 1
    open(path, "w").write(json.dumps(man))
    with pytest.raises(FormatVersionError, match="upgrade xaiboard"):
        RunReader(toy_run.out)


def test_corrupt_and_missing_runs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "manifest.json").write_text("{not json")
    with pytest.raises(SummaryError, match="corrupt manifest"):
        RunReader(tmp_path / "a")
    with pytest.raises(SummaryError, match="no manifest.json"):
        RunReader(tmp_path / "missing")
    assert find_runs(tmp_path) == [tmp_path / "a"]


def test_uncommitted_part_is_invisible(toy_run):
    import os
    from pathlib import Path

    run_dir = Path(toy_run.out)
    os.remove(run_dir / "tables" / "samples" / "part-000001.parquet")
    r = RunReader(run_dir)
    assert r.parts() == [0, 2]
    assert set(r.labels()["part"]) == {0, 2} and set(r.scores()["sample_index"]) == set(r.samples()["sample_index"])


def test_overwrite_marks_the_run_running_before_removing_its_parts(tmp_path, monkeypatch):
    """A reader between the two steps of --overwrite saw a finished run whose tables were gone
    ("part 0 … corrupt or missing", issue 18): the new manifest comes first."""
    from xai_core.summary import writer as W

    run_dir = tmp_path / "r"
    W.RunWriter.create(run_dir, {"classes": ["a"]}).finish("complete")
    (run_dir / "tables").mkdir()
    seen = []
    real = W.shutil.rmtree

    def rmtree(path, *a, **k):
        seen.append(json.loads((run_dir / "manifest.json").read_text())["status"])
        return real(path, *a, **k)

    monkeypatch.setattr(W.shutil, "rmtree", rmtree)
    W.RunWriter.create(run_dir, {"classes": ["a"]}, overwrite=True)
    assert seen and set(seen) == {"running"} and not (run_dir / "tables").exists()
