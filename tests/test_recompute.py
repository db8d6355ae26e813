"""Localisation scores recomputed from the run directory alone equal the stored ones."""

import shutil

import numpy as np
import pandas as pd
import pytest
import zarr

from toy import toy_config
from xai_core.config import config_from_dict
from xai_core.data import ManifestDataset, object_mask, prepare_batch
from xai_core.errors import SummaryError
from xai_core.recompute import recompute_localisation
from xai_core.runner import run
from xai_core.summary import RunReader

LOCALISATION = ["pointing_game", "iosr", "relevance_mass_accuracy", "relevance_rank_accuracy"]
KEY = ["sample_index", "label", "explainer", "metric"]


@pytest.fixture
def loc_run(toy_data, tmp_path):
    cfg = config_from_dict(toy_config(toy_data, tmp_path / "run", explainers=["gradient", "occlusion", "random"],
                                      metrics=["deletion_auc", *LOCALISATION], batch_size=5,
                                      labels={"threshold": 0.5, "top_k": 3}))
    run(cfg, cfg.out, progress=False)
    return cfg


def test_stored_masks_are_the_dataset_object_masks(loc_run, toy_data):
    r = RunReader(loc_run.out)
    ds = ManifestDataset(toy_data)
    batch = prepare_batch(ds, list(range(len(ds))), (32, 32))
    labels = r.labels()
    assert not labels.empty
    n_with = 0
    for _, row in labels.iterrows():
        expect = object_mask(batch.boxes[row.sample_index], batch.masks[row.sample_index], row.label, (32, 32))
        got = r.object_mask(row.part, row.map_offset)
        if expect is None:
            assert got is None
        else:
            n_with += 1
            np.testing.assert_array_equal(got, expect)
    assert 0 < n_with < len(labels)  # top-3 of 3 classes: some labels have no object


def test_recomputed_localisation_equals_the_stored_scores(loc_run, toy_data, tmp_path):
    # The dataset is gone: the run directory is all there is.
    moved = tmp_path / "elsewhere"
    shutil.copytree(loc_run.out, moved)
    shutil.rmtree(toy_data.parent)
    got = recompute_localisation(moved)
    stored = RunReader(moved).scores()
    stored = stored[stored["metric"].isin(LOCALISATION)]
    assert len(got) == len(stored) and set(got["metric"]) == set(LOCALISATION)
    a = got.sort_values(KEY).reset_index(drop=True)
    b = stored.sort_values(KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[KEY], b[KEY])
    np.testing.assert_array_equal(a["raw"].to_numpy(), b["raw"].to_numpy())  # NaN where they are NaN
    np.testing.assert_array_equal(a["score"].to_numpy(), b["score"].to_numpy())
    assert np.isfinite(a["raw"]).sum() > 0

    # Other parameters score the same maps differently, still without the dataset.
    strict = recompute_localisation(moved, params={"pointing_game": {"tolerance": 1}})
    pg = lambda df: df[df["metric"] == "pointing_game"].sort_values(KEY)["raw"].to_numpy()  # noqa: E731
    assert np.nansum(pg(strict)) <= np.nansum(pg(got))


def test_a_run_without_stored_masks_says_so(loc_run):
    r = RunReader(loc_run.out)
    part = r.parts()[0]
    g = zarr.open_group(str(r.run_dir / "arrays" / f"part-{part:06d}.zarr"), mode="a")
    del g["masks"]  # as written before the masks were stored
    old = RunReader(loc_run.out)
    assert not old.has_masks(part)
    assert len(old.labels()) > 0 and old.scores()["raw"].notna().any()  # the run still reads
    with pytest.raises(SummaryError, match="no object masks"):
        recompute_localisation(loc_run.out)
