"""Two runs compared (xai_core.dashboard.compare / compare_view): matching by sample id, tag
transitions and filters, paired score differences with bootstrap intervals, maps on one
colour scale. Runner-made runs of two models on the toy dataset, and synthetic runs with
known scores."""

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import dash_runs
import pages_runs
from xai_core.dashboard import MapStore, RunTables
from xai_core.dashboard import compare as C
from xai_core.dashboard import compare_view as V
from xai_core.dashboard.assessment import RowFilter
from xai_core.dashboard.overlay import OverlayStyle, clip_value


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return pages_runs.pages_logdir(tmp_path_factory)


@pytest.fixture(scope="module")
def pair(logdir):
    a, b = pages_runs.load_pair(logdir)
    return a, b, C.compare(a, b, pages_runs.RUN_A, pages_runs.RUN_B)


def _stored(t: RunTables) -> dict:
    """{(sample id, class name): tag} straight from a run's tables."""
    ids = t.samples.set_index("sample_index")["sample_id"]
    return {(ids[s], t.class_name(int(l))): str(g)
            for s, l, g in zip(t.labels["sample_index"], t.labels["label"], t.labels["tag"])}


def test_rows_are_every_label_either_run_explained_with_its_own_tag(pair):
    a, b, cmp = pair
    assert cmp.n_matched == 12 and cmp.only_a == cmp.only_b == 0 and cmp.gt_differs == 0
    sa, sb = _stored(a), _stored(b)
    rows = {(r.sample_id, r["class"]): r for _, r in cmp.rows.iterrows()}
    assert set(rows) == set(sa) | set(sb)
    assert {k: r.tag_a for k, r in rows.items() if r.explained_a} == sa
    assert {k: r.tag_b for k, r in rows.items() if r.explained_b} == sb
    # a label a run did not explain was neither ground truth nor predicted there: TN
    assert {r.tag_b for k, r in rows.items() if not r.explained_b} <= {"TN"}
    assert {r.tag_a for k, r in rows.items() if not r.explained_a} <= {"TN"}


def test_transitions_count_every_row_and_the_stricter_model_turns_tp_into_fn(pair):
    _, _, cmp = pair
    tr = C.transitions(cmp)
    assert int(tr.to_numpy().sum()) == len(cmp.rows)
    # B's model gives p ≈ 0.77 on a square and its threshold is 0.8: every TP of A is an FN in B
    n_tp = int((cmp.rows["tag_a"] == "TP").sum())
    assert n_tp > 0 and tr.loc["A: TP", "B: FN"] == n_tp


def test_filter_tp_in_a_fn_in_b_against_a_merge_of_the_two_tables(pair):
    a, b, cmp = pair
    got = C.filter_rows(cmp, C.RowsFilter(("TP",), ("FN",)))
    sa, sb = _stored(a), _stored(b)
    want = {k for k, v in sa.items() if v == "TP" and sb.get(k) == "FN"}
    assert set(zip(got["sample_id"], got["class"])) == want and want
    table = C.rows_frame(got)
    assert list(table.columns[:4]) == ["sample", "class", "tag A", "tag B"]
    np.testing.assert_allclose(table["Δp (B − A)"], table["p B"] - table["p A"])
    assert (np.diff(table["Δp (B − A)"].abs().to_numpy()) <= 1e-12).all()   # largest change first
    every = C.filter_rows(cmp, C.RowsFilter(changed_only=False))
    assert len(every) == len(cmp.rows)
    assert C.filter_rows(cmp, C.RowsFilter(labels=(0,), changed_only=False))["class"].eq("red").all()


def test_matching_is_by_sample_id_not_position(tmp_path):
    a = RunTables.load(dash_runs.write_synthetic(tmp_path / "a"))
    # the same samples written in another part layout and order: positions differ, ids match
    b = RunTables.load(dash_runs.write_synthetic(tmp_path / "b", parts=((3, 4), (0, 1, 2))))
    cmp = C.compare(a, b)
    assert cmp.n_matched == 5 and not cmp.rows["changed"].any()
    assert (a.scol("sample_id")[cmp.pos_a] == b.scol("sample_id")[cmp.pos_b]).all()
    np.testing.assert_allclose(cmp.rows["prob_a"], cmp.rows["prob_b"])


def test_runs_without_a_common_sample_are_refused_in_one_line(pair, logdir):
    a, _, _ = pair
    u = RunTables.load(logdir / pages_runs.UNRELATED, root=logdir)
    with pytest.raises(C.CompareError) as e:
        C.compare(a, u, "cmp/colour", "other/unrelated")
    msg = str(e.value)
    assert "no sample id in common" in msg and "'other/unrelated'" in msg and "\n" not in msg


def test_a_run_against_itself_differs_by_nothing(pair):
    a, _, _ = pair
    d = C.score_differences(C.compare(a, a))
    scored = d[d["n"] > 0]
    assert len(scored) and (scored["diff"] == 0).all() and set(scored["verdict"]) == {"equal"}


def test_paired_differences_equal_a_join_of_the_score_tables(pair):
    a, b, cmp = pair
    d = C.score_differences(cmp, rows_filter=RowFilter((), ()))
    row = d[(d["explainer"] == "gradcam") & (d["metric"] == "deletion_auc")].iloc[0]

    def scores(t):
        ids = t.samples.set_index("sample_index")["sample_id"]
        s = t.scores[(t.scores["explainer"] == "gradcam") & (t.scores["metric"] == "deletion_auc")]
        return pd.DataFrame({"id": ids.iloc[s["pos"].to_numpy()].to_numpy(), "label": s["label"].to_numpy(),
                             "score": s["score"].to_numpy()})

    j = scores(a).merge(scores(b), on=["id", "label"], suffixes=("_a", "_b")).dropna()
    assert row["n"] == len(j) > 0
    assert row["diff"] == pytest.approx((j["score_b"] - j["score_a"]).mean())
    assert row["mean_a"] == pytest.approx(j["score_a"].mean()) and row["mean_b"] == pytest.approx(j["score_b"].mean())
    assert row["ci_low"] <= row["diff"] <= row["ci_high"] and row["ci_method"] == "bootstrap"
    assert row["verdict"] == ("B better" if row["ci_low"] > 0 else "A better" if row["ci_high"] < 0 else "within noise")


def test_localisation_counts_tp_in_both_runs_by_default(pair):
    _, _, cmp = pair
    d = C.score_differences(cmp)
    pg = d[d["metric"] == "pointing_game"]
    assert (pg["n"] == 0).all() and set(pg["verdict"]) == {"no common results"}   # B has no TP at all
    d_all = C.score_differences(cmp, rows_filter=RowFilter((), ()))
    assert (d_all[d_all["metric"] == "pointing_game"]["n"] > 0).all()


def _shifted(tmp_path, monkeypatch, name, shift):
    """The synthetic run with metric m1's scores moved by ``shift(i)`` for the i-th pair."""
    keys = sorted(dash_runs.M1)
    m1 = {k: tuple(v + shift(i) for v in dash_runs.M1[k]) for i, k in enumerate(keys)}
    monkeypatch.setattr(dash_runs, "M1", m1)
    out = RunTables.load(dash_runs.write_synthetic(tmp_path / name))
    monkeypatch.undo()
    return out


def test_known_shift_is_b_better_and_symmetric_noise_is_within_noise(tmp_path, monkeypatch):
    a = RunTables.load(dash_runs.write_synthetic(tmp_path / "a"))
    up = _shifted(tmp_path, monkeypatch, "up", lambda i: 0.1)
    noisy = _shifted(tmp_path, monkeypatch, "noisy", lambda i: 0.05 if i % 2 else -0.05)
    d = C.score_differences(C.compare(a, up), rows_filter=RowFilter((), ()))
    m1 = d[(d["metric"] == "m1") & (d["explainer"] == "a")].iloc[0]
    assert m1["diff"] == pytest.approx(0.1) and m1["ci_low"] == pytest.approx(0.1) and m1["verdict"] == "B better"
    assert m1["n"] == 7                                   # the inf score is no pair
    assert set(d[d["metric"] != "m1"]["verdict"]) == {"equal"}
    back = C.score_differences(C.compare(up, a), rows_filter=RowFilter((), ()))
    assert back[(back["metric"] == "m1") & (back["explainer"] == "a")]["verdict"].item() == "A better"
    d = C.score_differences(C.compare(a, noisy), rows_filter=RowFilter((), ()))
    m1 = d[(d["metric"] == "m1") & (d["explainer"] == "a")].iloc[0]
    assert m1["ci_low"] < 0 < m1["ci_high"] and m1["verdict"] == "within noise"


def test_classification_frame_compares_the_common_samples(pair):
    _, _, cmp = pair
    f = C.classification_frame(cmp)
    assert f.loc["micro-F1", "A"] > f.loc["micro-F1", "B"]          # B misses every square
    np.testing.assert_allclose(f["B − A"], f["B"] - f["A"])


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)


def test_maps_side_by_side_share_one_colour_scale(tmp_path):
    run = dash_runs.write_synthetic(tmp_path / "s")
    t, store = RunTables.load(run), MapStore(run)
    cmp = C.compare(t, t)
    row = cmp.rows.iloc[0]
    style = OverlayStyle(overlay=False, scale="all")
    pair = V.side_by_side(cmp, store, store, row, "a", "b", style)
    ma = store.saliency("a", int(t.lcol("part")[row.lrow_a]), int(t.lcol("map_offset")[row.lrow_a]))
    mb = store.saliency("b", int(t.lcol("part")[row.lrow_b]), int(t.lcol("map_offset")[row.lrow_b]))
    assert pair.vmax == pytest.approx(clip_value([ma, mb], style))
    assert pair.vmax > 5 * clip_value([ma], style)        # b's maps are 10× a's: the scale is b's
    # on one scale a's map (10× weaker) is much darker than b's; on its own it would not be
    assert _pixels(pair.tile_a).mean() < 0.5 * _pixels(pair.tile_b).mean()
    assert pair.legend.high == pytest.approx(pair.vmax) and not pair.notes


def test_a_label_one_run_did_not_explain_has_no_map_and_says_why(pair, logdir):
    a, b, cmp = pair
    row = cmp.rows[~cmp.rows["explained_b"]].iloc[0]
    sp = V.side_by_side(cmp, MapStore(a.run_dir), MapStore(b.run_dir), row, "gradient", "gradient", OverlayStyle())
    assert sp.tile_a is not None and sp.tile_b is None
    assert len(sp.notes) == 1 and "not explained" in sp.notes[0]


def test_page_fields_take_their_choices_from_the_two_runs(pair):
    _, _, cmp = pair
    fields = {f.key: f for f in V.compare_fields(cmp)}
    assert fields["vs_exp_a"].default == fields["vs_exp_b"].default == "gradient"
    assert fields["vs_loc_tags"].default == ["TP"]
    assert V.row_key(cmp.rows.iloc[0]) in V.row_field([V.row_key(r) for _, r in cmp.rows.iterrows()]).choices


def test_the_configuration_diff_lists_only_what_differs(logdir):
    from xai_core.summary.reader import read_manifest

    a, b = (read_manifest(logdir / r) for r in (pages_runs.RUN_A, pages_runs.RUN_B))
    diff = C.config_diff(a, b).set_index("setting")
    assert diff.loc["labels.threshold", "A"] == "0.5" and diff.loc["labels.threshold", "B"] == "0.8"
    assert diff.loc["labels.top_k"].tolist() == ["3", "1"] and "model.factory" in diff.index
    assert "out" not in diff.index and not any(k.startswith("explainers") for k in diff.index)  # the same
    assert len(C.config_diff(a, a)) == 0
