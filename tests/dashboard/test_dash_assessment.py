"""Aggregation for the assessment pages (xai_core.dashboard.assessment), known answers."""

import numpy as np
import pandas as pd
import pytest

import dash_runs
from xai_core.dashboard import assessment as A
from xai_core.dashboard import RunTables
from xai_core.errors import XaiError

EQUAL = {"m1": 1, "m2": 1, "m3": 1}


@pytest.fixture(scope="module")
def long(synth_tables):
    return A.explainer_metric_table(synth_tables, n_boot=200)


def cell(long, e, m, col):
    return long[(long.explainer == e) & (long.metric == m)][col].item()


def test_means_over_finite_scores_and_skipped_counts(long):
    assert cell(long, "a", "m1", "mean") == pytest.approx(3.3 / 7)      # the inf is skipped
    assert (cell(long, "a", "m1", "n"), cell(long, "a", "m1", "skipped")) == (7, 1)
    assert cell(long, "b", "m1", "mean") == pytest.approx(2.9 / 7)      # the NaN is skipped
    assert cell(long, "a", "m2", "mean") == pytest.approx(0.7)          # score = 1 − raw (lower raw is better)
    assert cell(long, "a", "m2", "raw_mean") == pytest.approx(0.3)
    assert (cell(long, "b", "m3", "mean"), cell(long, "b", "m3", "skipped")) == (0.75, 3)


def test_intervals_contain_the_mean(long):
    assert (long["ci_low"] <= long["mean"] + 1e-12).all() and (long["mean"] <= long["ci_high"] + 1e-12).all()
    assert cell(long, "a", "m3", "ci_low") == cell(long, "a", "m3", "ci_high") == 0.25   # constant values


def test_bootstrap_is_seeded_and_switches_to_normal_for_large_n():
    v = np.random.default_rng(1).uniform(size=200)
    assert A.bootstrap_ci(v, seed=3) == A.bootstrap_ci(v, seed=3)
    lo, hi, how = A.bootstrap_ci(v)
    half = 1.96 * v.std(ddof=1) / np.sqrt(v.size)
    assert how == "bootstrap" and lo == pytest.approx(v.mean() - half, abs=0.01) and hi == pytest.approx(v.mean() + half, abs=0.01)
    big = np.random.default_rng(2).uniform(size=6000)
    assert A.bootstrap_ci(big)[2] == "normal"
    assert A.bootstrap_ci([np.nan, np.inf])[2] == "none"


def test_weights_are_normalised():
    assert A.normalise_weights({"x": 1, "y": 1, "z": 2}) == {"x": 0.25, "y": 0.25, "z": 0.5}
    with pytest.raises(XaiError, match="every metric weight is 0"):
        A.normalise_weights({"x": 0, "y": 0})
    with pytest.raises(XaiError, match="≥ 0"):
        A.normalise_weights({"x": -1, "y": 2})


def test_weights_change_the_ranking(long):
    equal = A.comprehensive(long, EQUAL)
    assert equal["explainer"].tolist() == ["b", "a"]
    assert equal.set_index("explainer")["score"]["a"] == pytest.approx((3.3 / 7 + 0.7 + 0.25) / 3)
    only_m2 = A.comprehensive(long, {"m1": 0, "m2": 1, "m3": 0})
    assert only_m2["explainer"].tolist() == ["a", "b"] and only_m2["score"].tolist() == pytest.approx([0.7, 0.3])
    assert only_m2["metrics_used"].tolist() == ["1/1", "1/1"] and only_m2["rank"].tolist() == [1, 2]


def test_metric_without_finite_results_is_left_out():
    long = pd.DataFrame({"explainer": ["a", "a"], "metric": ["x", "y"], "mean": [0.4, np.nan]})
    c = A.comprehensive(long, {"x": 1, "y": 3})
    assert c["score"].item() == pytest.approx(0.4) and c["metrics_used"].item() == "1/2"


def test_table_has_directions_intervals_and_sanity(synth_tables, long):
    table = A.assessment_table(synth_tables, long, EQUAL)
    assert table["explainer"].tolist() == ["b", "a"]
    assert table.set_index("explainer")["sanity"].to_dict() == {"a": "passed (similarity 0.120)", "b": "FAILED (similarity 0.930)"}
    assert {"m1 mean", "m1 ci_low", "m1 ci_high", "m1 n", "m1 skipped"} <= set(table.columns)
    shown = A.display_table(table, A.metric_infos(synth_tables))
    # one narrow numeric column per metric, named after the score (m2's lower-is-better raw value
    # is mapped by 1 − x: the header says so, issue 18)
    assert list(shown.columns) == ["rank", "explainer", "comprehensive", "Metric one", "Metric two [1 − x]",
                                   "Metric three", "metrics used", "sanity"]
    assert shown.set_index("explainer")["Metric three"]["a"] == pytest.approx(0.25)
    assert shown["sanity"].tolist() == ["FAILED (0.930)", "passed (0.120)"]
    iv = A.interval_table(table, A.metric_infos(synth_tables)).set_index(["explainer", "metric"])
    assert iv.loc[("a", "Metric three"), "skipped"] == "3" and iv.loc[("a", "Metric three"), "results"] == "5"
    assert iv.loc[("a", "Metric three"), "mean"] == "0.250"
    frame = A.metrics_frame(A.metric_infos(synth_tables))
    assert frame["direction (raw)"].tolist() == ["higher is better", "lower is better", "higher is better"]
    assert frame["per"].tolist() == ["image × label", "image", "image × label"]
    assert frame["mapping to [0, 1]"].tolist() == ["x", "1 − x", "x"]
    # the raw view: mean raw values (m2 is stored with score = 1 − raw)
    raw = A.display_table(table, A.metric_infos(synth_tables), values="raw").set_index("explainer")
    sc = shown.set_index("explainer")
    np.testing.assert_allclose(raw["Metric two (raw, lower better)"], 1.0 - sc["Metric two [1 − x]"])


def test_no_sanity_column_without_a_check(tmp_path):
    t = RunTables.load(dash_runs.write_synthetic(tmp_path / "r"), root=tmp_path)
    long = A.explainer_metric_table(t, n_boot=10)
    assert "sanity" not in A.assessment_table(t, long, EQUAL).columns
    assert A.sanity_column({"sanity": None}) == {}


def test_per_class_means(synth_tables):
    pc = A.per_class(synth_tables).set_index(["explainer", "metric", "class"])
    assert pc.loc[("a", "m1", "cat"), "mean"] == pytest.approx((0.9 + 0.7 + 0.6) / 3)
    assert pc.loc[("a", "m1", "bird"), "n"] == 1                     # inf skipped
    # label-agnostic m2 goes to the argmax class: cat = samples 0 and 4
    assert pc.loc[("a", "m2", "cat"), "mean"] == pytest.approx((0.9 + 0.5) / 2)
    assert (pc.loc[("b", "m3", "dog"), "mean"], pc.loc[("b", "m3", "dog"), "n"]) == (0.75, 1)  # ground truth only
    one = A.class_bars_frame(A.per_class(synth_tables), metric="m1")
    assert set(one["explainer"]) == {"a", "b"} and set(one["metric"]) == {"m1"}
    with pytest.raises(XaiError):
        A.class_bars_frame(one)


def test_class_counts(synth_tables):
    c = A.class_counts(synth_tables).set_index("class")
    assert c["explained"].tolist() == [3, 3, 2]
    assert c["ground truth images"].tolist() == [3, 1, 1]
    assert c[["TP", "FP", "FN", "TN"]].loc["cat"].tolist() == [2, 0, 1, 0]
    assert c[["TP", "FP", "FN", "TN"]].loc["dog"].tolist() == [1, 1, 0, 1]


def test_scored_metric_infos_keeps_run_order_and_drops_metrics_without_scores(synth_tables):
    import dataclasses

    every = [m.name for m in A.metric_infos(synth_tables)]
    assert [m.name for m in A.scored_metric_infos(synth_tables)] == every
    dropped = every[0]
    partial = dataclasses.replace(
        synth_tables, pair_slices={k: v for k, v in synth_tables.pair_slices.items() if k[1] != dropped})
    assert [m.name for m in A.scored_metric_infos(partial)] == every[1:]


def test_csv_table_carries_the_normalised_weights(synth_tables, long):
    table = A.assessment_table(synth_tables, long, {"m1": 3.0, "m2": 1.0, "m3": 0.0})   # > 1 is fine: ratios
    assert table["m1 weight"].tolist() == [0.75, 0.75] and table["m2 weight"].tolist() == [0.25, 0.25]
    assert table["m3 weight"].tolist() == [0.0, 0.0]
    assert "m1 weight" in table.to_csv(index=False).splitlines()[0]


def test_row_filter_by_tag(synth_tables):
    every = A.explainer_metric_table(synth_tables, n_boot=10).set_index(["explainer", "metric"])
    default = A.explainer_metric_table(synth_tables, n_boot=10, rows_filter=A.RowFilter()).set_index(["explainer", "metric"])
    # m3 (localization) has a value on the 5 ground-truth labels; by default only the 4 TP count
    assert every.loc[("a", "m3"), "n"] == 5 and default.loc[("a", "m3"), "n"] == 4
    assert every.loc[("a", "m1"), "n"] == default.loc[("a", "m1"), "n"] == 7          # other metrics: every tag
    tp = A.explainer_metric_table(synth_tables, n_boot=10, rows_filter=A.RowFilter(("TP",), ())).set_index(
        ["explainer", "metric"])
    assert tp.loc[("a", "m1"), "mean"] == pytest.approx((0.9 + 0.5 + 0.6) / 3) and tp.loc[("a", "m1"), "skipped"] == 1
    assert tp.loc[("a", "m2"), "n"] == 5                       # label-agnostic: one per image, always counted
    assert tp.loc[("a", "m3"), "n"] == 5                       # localisation: () = every tag
    pc = A.per_class(synth_tables, A.RowFilter(("TP",), ("TP",))).set_index(["explainer", "metric", "class"])
    assert pc.loc[("a", "m1", "cat"), "n"] == 2 and pc.loc[("a", "m1", "cat"), "mean"] == pytest.approx(0.75)
    assert "localisation metrics TP" in A.RowFilter().text


# ---- issue 18: flags for uninformative metrics, score names, a cheap ranking -----------------
def _with_reference(t, name):
    """``t`` with explainer ``name`` declared a random reference (type "random")."""
    from dataclasses import replace

    explainers = [{**e, "type": "random" if e["name"] == name else e["type"]} for e in t.manifest["explainers"]]
    return replace(t, manifest={**t.manifest, "explainers": explainers})


def test_a_metric_the_random_reference_scores_as_well_as_the_best_is_flagged(synth_tables, long):
    assert A.flags(synth_tables, long) == []                  # no reference explainer: nothing to compare with
    b_random = _with_reference(synth_tables, "b")
    assert A.reference_explainers(b_random) == ["b"]
    flags = A.flags(b_random, long)
    # m3: b (random) 0.75 against a's 0.25; m1 (0.414 vs 0.471) and m2 (0.3 vs 0.7) separate them
    assert [(f.kind, f.metric) for f in flags] == [("uninformative", "m3")]
    assert "random reference b scores 0.750, as well as the best explainer (a 0.250" in flags[0].text
    a_random = _with_reference(synth_tables, "a")
    assert {f.metric for f in A.flags(a_random, long)} == {"m1", "m2"}
    # within the margin counts as "as well as": 0.471 − 0.414 > 0.02, but not once b gains 0.05
    close = long.copy()
    close.loc[(close.explainer == "a") & (close.metric == "m1"), "mean"] = 0.414 + A.UNINFORMATIVE_MARGIN / 2
    assert "m1" in {f.metric for f in A.flags(b_random, close)}
    table = A.assessment_table(b_random, long, EQUAL)
    shown = A.display_table(table, A.metric_infos(b_random), flagged={"m3"})
    assert "Metric three ⚠" in shown.columns


def test_score_names_say_how_the_raw_value_was_mapped():
    info = A.MetricInfo("deletion_auc", "Deletion AUC", "faithfulness", False, (0.0, 1.0), False, mapping="1 - x")
    assert info.score_name == "Deletion (1 − AUC)" and info.mapped
    ent = A.MetricInfo("complexity", "Complexity (entropy)", "complexity", False, (0.0, 1.0), False, mapping="1 - x")
    assert ent.score_name == "Complexity (entropy) [1 − x]"
    same = A.MetricInfo("iosr", "IoSR", "localization", True, (0.0, 1.0), False, mapping="x")
    assert same.score_name == "IoSR" and not same.mapped
    assert A.default_mapping(False, (0.0, 1.0)) == "1 - x" and A.default_mapping(True, (-1.0, 1.0)) == "(x - (-1)) / 2"


def test_quick_ranking_agrees_with_the_comprehensive_score(synth_tables, long):
    assert A.quick_ranking(synth_tables) == A.comprehensive(long, EQUAL)["explainer"].tolist() == ["b", "a"]


def test_weights_near_the_float_maximum_are_normalised_safely(long):
    assert A.normalise_weights({"x": 1e308, "y": 1e308, "z": 0}) == {"x": 0.5, "y": 0.5, "z": 0.0}
    assert A.normalise_weights({"x": 5e-324, "y": 5e-324}) == {"x": 0.5, "y": 0.5}
    huge = A.comprehensive(long, {m: 1e308 for m in EQUAL})
    pd.testing.assert_frame_equal(huge, A.comprehensive(long, EQUAL))


def test_one_name_for_each_score_everywhere():
    """Compare runs, the report and the live page name [0, 1] scores as the assessment does."""
    from xai_core.dashboard import live as L
    from xai_core.dashboard.metric_info import registry_score_names

    names = registry_score_names(["deletion_auc", "insertion_auc", "sparseness"])
    assert names == {"deletion_auc": "Deletion (1 − AUC)", "insertion_auc": "Insertion AUC",
                     "sparseness": "Sparseness (Gini)"}
    assert L.metric_names()["deletion_auc"] == "Deletion (1 − AUC)"
