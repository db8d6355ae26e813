"""Filters, sorting and paging of the saliency page, on a run with known values."""

import numpy as np
import pytest

import dash_runs
from xai_core.dashboard import RunTables
from xai_core.dashboard import detail as D
from xai_core.dashboard import query as Q
from xai_core.errors import XaiError


def order(t, flt=Q.SaliencyFilter(), sort=Q.SortSpec()):
    return Q.select(t, flt, sort).order.tolist()


def test_no_filter_sorts_by_max_probability(synth_tables):
    assert order(synth_tables) == [4, 0, 1, 2, 3]


def test_ascending_sorts_by_min_probability(synth_tables):
    assert order(synth_tables, sort=Q.SortSpec(descending=False)) == [2, 3, 4, 0, 1]


def test_image_passes_when_any_label_passes(synth_tables):
    assert order(synth_tables, Q.SaliencyFilter(tags=("FP",))) == [2, 0]
    assert order(synth_tables, Q.SaliencyFilter(labels=(2,))) == [2, 4]
    assert order(synth_tables, Q.SaliencyFilter(labels=(2,), tags=("FN", "TN"))) == []


def test_sort_value_is_over_the_filtered_labels_only(synth_tables):
    # Sample 0 has cat 0.90 and dog 0.60: with p ≤ 0.85 its sort value is 0.60.
    sel = Q.select(synth_tables, Q.SaliencyFilter(prob_min=0.5, prob_max=0.85), Q.SortSpec())
    assert sel.order.tolist() == [1, 2, 0, 4]
    np.testing.assert_allclose(sel.value, [0.8, 0.7, 0.6, 0.55], rtol=1e-6)


def test_tag_counts_follow_label_and_probability_filters(synth_tables):
    assert Q.tag_counts(synth_tables, Q.SaliencyFilter()) == {"TP": 4, "FP": 2, "FN": 1, "TN": 1}
    assert Q.tag_counts(synth_tables, Q.SaliencyFilter(labels=(0,), tags=())) == {"TP": 2, "FP": 0, "FN": 1, "TN": 0}


def test_sort_by_score_ascending_finds_the_worst_and_skips_non_finite(synth_tables):
    worst = Q.SortSpec(Q.SORT_SCORE, descending=False, explainer="a", metric="m1")
    sel = Q.select(synth_tables, Q.SaliencyFilter(), worst)
    assert sel.order.tolist() == [2, 0, 3, 1, 4]           # sample 4's inf is ignored: min(0.6)
    np.testing.assert_allclose(sel.value, [0.1, 0.2, 0.3, 0.5, 0.6])
    best = Q.SortSpec(Q.SORT_SCORE, descending=True, explainer="b", metric="m1")
    assert order(synth_tables, sort=best) == [4, 2, 0, 3, 1]  # sample 1 has only NaN: last


def test_sort_by_label_agnostic_score(synth_tables):
    assert order(synth_tables, sort=Q.SortSpec(Q.SORT_SCORE, True, "a", "m2")) == [0, 1, 2, 3, 4]


def test_sort_by_sample_id(synth_tables):
    assert order(synth_tables, sort=Q.SortSpec(Q.SORT_ID, True)) == [4, 3, 2, 1, 0]
    assert order(synth_tables, sort=Q.SortSpec(Q.SORT_ID, False)) == [0, 1, 2, 3, 4]


def test_uncertainty_sort_only_when_the_run_has_it(tmp_path, synth_tables):
    assert Q.SORT_UNCERTAINTY not in Q.sort_options(synth_tables)
    with pytest.raises(XaiError, match="no uncertainty"):
        Q.select(synth_tables, Q.SaliencyFilter(), Q.SortSpec(Q.SORT_UNCERTAINTY))
    t = RunTables.load(dash_runs.write_synthetic(tmp_path / "u", prob_std=True), root=tmp_path)
    assert Q.sort_options(t) == [Q.SORT_PROBABILITY, Q.SORT_SCORE, Q.SORT_UNCERTAINTY, Q.SORT_ID]
    assert order(t, sort=Q.SortSpec(Q.SORT_UNCERTAINTY)) == [4, 2, 3, 1, 0]
    chip = Q.page_view(t, Q.select(t, Q.SaliencyFilter(), Q.SortSpec()), 1, 5).rows[0].chips[0]
    # sample 4: "cat · 0.950", then the 95 % interval; a narrow chip may wrap only between the two
    # (no-break spaces and word joiners elsewhere, issue 18: "8 1.000 [1.000, 1.000]" over 4 lines)
    assert (chip.name, chip.text) == ("cat", "cat\u00a0·\u00a00.950 [0.85\u2060–\u20601.00]")
    assert [w for w in chip.text.split(" ")] == ["cat\u00a0·\u00a00.950", "[0.85\u2060–\u20601.00]"]
    assert "±" not in chip.text and "standard deviation 0.050" in chip.help


@pytest.fixture(scope="module")
def unc_tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("unc")
    return RunTables.load(dash_runs.write_synthetic(d / "u", prob_std=True), root=d)


def test_uncertainty_filter_passes_images_with_any_label_in_range(unc_tables):
    # std = 0.01 · (sample + 1) · (label + 1): rows in [0.045, 0.1] are s2/bird 0.09 (FP),
    # s3/dog 0.08 (TN) and s4/cat 0.05 (TP); s4/bird 0.15 is out, and so on.
    flt = Q.SaliencyFilter(std_min=0.045, std_max=0.1)
    assert flt.filters_std and not Q.SaliencyFilter().filters_std
    sel = Q.select(unc_tables, flt, Q.SortSpec())
    assert sel.order.tolist() == [4, 2, 3]
    np.testing.assert_allclose(sel.value, [0.95, 0.70, 0.40], rtol=1e-6)     # over the passing labels only
    assert order(unc_tables, Q.SaliencyFilter(tags=("TP",), std_min=0.045, std_max=0.1)) == [4]
    assert order(unc_tables, Q.SaliencyFilter(std_min=0.1)) == [4]
    assert Q.tag_counts(unc_tables, flt) == {"TP": 1, "FP": 1, "FN": 0, "TN": 1}
    view = Q.page_view(unc_tables, sel, 1, 5)
    assert [c.passes for c in view.rows[0].chips] == [True, False]             # s4: cat passes, bird does not
    assert Q.std_range(unc_tables) == (0.0, 0.15)


def test_uncertainty_filter_needs_uncertainty_and_a_valid_range(synth_tables):
    assert Q.std_range(synth_tables) == (0.0, 0.0)
    with pytest.raises(XaiError, match="no uncertainty"):
        Q.select(synth_tables, Q.SaliencyFilter(std_max=0.1), Q.SortSpec())
    with pytest.raises(XaiError, match="uncertainty range"):
        Q.SaliencyFilter(std_min=0.2, std_max=0.1)
    with pytest.raises(XaiError, match="probability range"):
        Q.SaliencyFilter(prob_min=0.9, prob_max=0.1)


def test_unknown_sort_pair_is_an_error(synth_tables):
    with pytest.raises(XaiError, match="no scores for explainer 'a' on metric 'zz'"):
        Q.select(synth_tables, Q.SaliencyFilter(), Q.SortSpec(Q.SORT_SCORE, True, "a", "zz"))


def test_page_view_clamps_and_marks_passing_chips(synth_tables):
    sel = Q.select(synth_tables, Q.SaliencyFilter(tags=("FP",)), Q.SortSpec())
    view = Q.page_view(synth_tables, sel, page=1, page_size=1)
    assert (view.total, view.n_pages, [r.sample_id for r in view.rows]) == (2, 2, ["img2"])
    last = Q.page_view(synth_tables, sel, page=9, page_size=1)
    assert last.page == 2 and last.rows[0].sample_id == "img0"
    row = last.rows[0]
    assert [(c.name, c.tag, c.passes) for c in row.chips] == [("cat", "TP", False), ("dog", "FP", True)]
    assert row.default_label() == 1  # the first passing label, not the most probable one
    assert row.chips[0].text == "cat\u00a0·\u00a00.900"
    with pytest.raises(XaiError):
        Q.page_view(synth_tables, sel, 1, 0)


def test_sample_detail(synth_tables):
    d = D.sample_detail(synth_tables, D.find_pos(synth_tables, 0))
    assert d.ground_truth == ("cat",) and d.boxes == (("cat", 1.0, 1.0, 4.0, 4.0),)
    assert (d.height, d.width, d.source) == (8, 8, "src/0.png")
    # 2 labels × (m1, m3) + 1 image-level m2, for each of 2 explainers
    assert len(d.scores) == 2 * (2 * 2 + 1) and set(d.scores["label"]) == {"cat", "dog", "(image)"}
    with pytest.raises(XaiError):
        D.find_pos(synth_tables, 77)


def test_score_choices_in_run_order(synth_tables):
    assert Q.score_choices(synth_tables) == {"a": ["m1", "m2", "m3"], "b": ["m1", "m2", "m3"]}


# ---- issue 12: the sort value names its label; the label filter offers the run's labels -------
def test_sorted_rows_carry_the_label_of_their_value(synth_tables):
    worst = Q.SortSpec(Q.SORT_SCORE, descending=False, explainer="a", metric="m1")
    sel = Q.select(synth_tables, Q.SaliencyFilter(), worst)
    labels = synth_tables.lcol("label")
    # sample 2: bird 0.1 < cat 0.7; sample 0: dog 0.2 < cat 0.9 (its default chip would be cat)
    assert dict(zip(sel.order.tolist(), labels[sel.lrow].tolist())) == {2: 2, 0: 1, 3: 1, 1: 1, 4: 0}
    view = Q.page_view(synth_tables, sel, 1, 5)
    row0 = next(r for r in view.rows if r.pos == 0)
    assert row0.sort_label == 1 and row0.default_label() == 1
    assert Q.sort_caption(synth_tables, worst, row0) == "a · Metric one of dog: 0.200"
    # with the FP label filtered out, sample 0's value and label are its cat row's
    tp = Q.page_view(synth_tables, Q.select(synth_tables, Q.SaliencyFilter(tags=("TP",)), worst), 1, 5)
    row0 = next(r for r in tp.rows if r.pos == 0)
    assert (row0.sort_label, row0.value) == (0, pytest.approx(0.9))
    agn = Q.SortSpec(Q.SORT_SCORE, True, "a", "m2")
    row = Q.page_view(synth_tables, Q.select(synth_tables, Q.SaliencyFilter(), agn), 1, 1).rows[0]
    # m2's score is 1 − raw: its name says so and the raw value follows (issue 18)
    assert Q.sort_caption(synth_tables, agn, row) == "a · Metric two [1 − x] (whole image): 0.900 (raw 0.100)"


def test_sort_caption_for_probability_and_missing_values(synth_tables):
    asc = Q.SortSpec(descending=False)
    row = Q.page_view(synth_tables, Q.select(synth_tables, Q.SaliencyFilter(), asc), 1, 1).rows[0]
    assert row.pos == 2 and Q.sort_caption(synth_tables, asc, row) == "probability of cat: 0.200"
    best_b = Q.SortSpec(Q.SORT_SCORE, True, "b", "m1")
    last = Q.page_view(synth_tables, Q.select(synth_tables, Q.SaliencyFilter(), best_b), 5, 1).rows[0]
    assert last.pos == 1 and last.sort_label is None and Q.sort_caption(synth_tables, best_b, last) == ""
    ids = Q.page_view(synth_tables, Q.select(synth_tables, Q.SaliencyFilter(), Q.SortSpec(Q.SORT_ID)), 1, 1).rows[0]
    assert ids.sort_label is None and ids.default_label() == 0


def test_present_labels_are_the_explained_ones(synth_tables, tmp_path):
    assert Q.present_labels(synth_tables) == [0, 1, 2]
    # a run whose classes list is longer than what it explained offers only the explained labels
    t = RunTables(synth_tables.run_dir, {**synth_tables.manifest, "classes": [f"c{i}" for i in range(1000)]},
                  synth_tables.samples, synth_tables.extra, synth_tables.labels, synth_tables.starts,
                  synth_tables.scores, synth_tables.pair_slices)
    assert Q.present_labels(t) == [0, 1, 2]


def test_scores_pivot_is_explainers_by_metrics_for_one_label(synth_tables):
    d = D.sample_detail(synth_tables, 2)           # m3 has no value on the FP label (bird)
    bird = D.scores_pivot(synth_tables, d.scores, 2)
    # issue 18: explainers × metrics named after their scores, not (explainer, metric) × label index
    assert bird.index.tolist() == ["a", "b"]
    assert bird.columns.tolist() == ["Metric one", "Metric two [1 − x] · whole image", "Metric three"]
    assert bird.loc["a", "Metric three"] == "—" and bird.loc["a", "Metric one"] == "0.100"
    assert bird.loc["a", "Metric two [1 − x] · whole image"] == "0.700 (0.300)"   # score (raw)
    cat = D.scores_pivot(synth_tables, d.scores, 0)
    assert cat.loc["a", "Metric three"] == "0.250" and cat.loc["a", "Metric one"] == "0.700"
    assert "None" not in bird.to_numpy().ravel().tolist() + cat.to_numpy().ravel().tolist()


def test_a_score_sort_over_every_tag_names_a_tn_label_only_for_an_image_with_nothing_else(dash_logdir):
    """Faithfulness scores a TN label (a class the model does not see) trivially well and its map
    is blank: with all four tags the sort starts with real maps (issue 25)."""
    from xai_core.labels import TAGS

    t = RunTables.load(dash_logdir / dash_runs.RUNNER_RUN)
    sel = Q.select(t, Q.SaliencyFilter(tags=TAGS), Q.SortSpec(Q.SORT_SCORE, True, "gradient", "deletion_auc"))
    tags, pos = t.lcol("tag"), t.lcol("pos")
    tn = TAGS.index("TN")
    named = [(p, lr) for p, lr in zip(sel.order, sel.lrow) if lr >= 0]
    assert named
    for p, lr in named:
        if tags[lr] == tn:  # only where the image has no other label
            assert (tags[pos == p] == tn).all(), p
    is_tn = [bool(tags[lr] == tn) for _, lr in named]
    assert any(is_tn) and not is_tn[0] and is_tn == sorted(is_tn)  # blank TN maps after every real one
