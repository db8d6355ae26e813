"""Comprehensive and classification assessment pages under AppTest."""

import numpy as np
import pytest

import dash_runs
from apptest_util import open_page
from xai_core.summary import RunReader

CMP = "pages/comprehensive.py"
CLS = "pages/classification.py"


@pytest.fixture(scope="module")
def means(dash_logdir):
    """explainer × metric mean of the finite [0, 1] scores, computed with plain pandas, over
    what the page counts by default: localisation metrics on TP labels only."""
    r = RunReader(dash_logdir / dash_runs.RUNNER_RUN)
    sc = r.scores().merge(r.labels()[["sample_index", "label", "tag"]], on=["sample_index", "label"], how="left")
    loc = sc["metric"].isin(["pointing_game", "iosr"])
    sc = sc[np.isfinite(sc["score"]) & (~loc | (sc["tag"] == "TP"))]
    return sc.groupby(["explainer", "metric"])["score"].mean().unstack()


def ranking(means, weights):
    w = {m: v / sum(weights.values()) for m, v in weights.items()}
    total = sum(means[m] * v for m, v in w.items())
    return total.sort_values(ascending=False, kind="stable").index.tolist()


def score_table(at):
    """The scores table (a static st.table: it fits the screen without a scroll bar)."""
    return next(t.value for t in at.table if "comprehensive" in t.value.columns)


def shown_ranking(at):
    return score_table(at)["explainer"].tolist()


def test_table_charts_and_csv(monkeypatch, dash_logdir, means):
    at = open_page(monkeypatch, dash_logdir, CMP, dash_runs.RUNNER_RUN)
    metrics = next(df.value for df in at.dataframe if "direction (raw)" in df.value.columns)
    assert metrics.set_index("metric")["direction (raw)"]["deletion_auc"] == "lower is better"
    equal = {m: 1.0 for m in means.columns}
    assert shown_ranking(at) == ranking(means, equal)
    assert len(at.get("plotly_chart")) == 2                       # ranking bars + radar (4 metrics)
    assert "weights" in at.get("download_button")[0].proto.label
    shown = score_table(at).set_index("explainer")["Pointing Game"].astype(float)
    assert np.allclose(shown[means.index], means.loc[:, "pointing_game"])
    intervals = next(df.value for df in at.dataframe if "95 % interval" in df.value.columns)
    assert "—" not in intervals["skipped"].tolist() and "None" not in intervals.to_numpy().ravel().tolist()


def test_weights_change_the_ranking(monkeypatch, dash_logdir, means):
    at = open_page(monkeypatch, dash_logdir, CMP, dash_runs.RUNNER_RUN)
    orders = {m: ranking(means, {k: float(k == m) for k in means.columns}) for m in means.columns}
    a, b = next((a, b) for a in orders for b in orders if orders[a][0] != orders[b][0])
    for name, want in ((a, orders[a]), (b, orders[b])):
        for m in means.columns:
            at.number_input(key=f"cmp_w_{m}").set_value(1.0 if m == name else 0.0)
        at.run()
        assert not at.exception
        assert shown_ranking(at) == want
    for m in means.columns:
        at.number_input(key=f"cmp_w_{m}").set_value(0.0)
    at.run()
    assert "every metric weight is 0" in at.error[0].value


def test_sanity_column_when_the_run_has_one(monkeypatch, dash_logdir):
    at = open_page(monkeypatch, dash_logdir, CMP, dash_runs.SYNTH_RUN)
    table = score_table(at)
    assert table.set_index("explainer")["sanity"].to_dict() == {"a": "passed (0.120)", "b": "FAILED (0.930)"}
    runner = open_page(monkeypatch, dash_logdir, CMP, dash_runs.RUNNER_RUN)
    assert "sanity" not in score_table(runner).columns


def test_classification_two_modes(monkeypatch, dash_logdir):
    at = open_page(monkeypatch, dash_logdir, CLS, dash_runs.SYNTH_RUN)
    assert len(at.get("plotly_chart")) == 1
    counts = next(df.value for df in at.dataframe if "explained" in df.value.columns)
    assert counts.set_index("class")["explained"].to_dict() == {"cat": 3, "dog": 3, "bird": 2}
    assert at.multiselect(key="cls_metrics").value == ["m1", "m2", "m3"]       # label-agnostic m2 allowed here
    at.radio(key="cls_mode").set_value("One metric, several explainers").run()
    assert not at.exception
    assert at.selectbox(key="cls_metric").options == ["Metric one", "Metric three"]   # m2 is label-agnostic
    assert any("Metric two" in c.value for c in at.caption)
    at.selectbox(key="cls_metric").set_value("m3").run()
    assert len(at.get("plotly_chart")) == 1 and not at.exception


def test_classification_on_the_runner_run(monkeypatch, dash_logdir):
    at = open_page(monkeypatch, dash_logdir, CLS, dash_runs.RUNNER_RUN)
    at.radio(key="cls_mode").set_value("One metric, several explainers").run()
    assert "Class Sensitivity" not in at.selectbox(key="cls_metric").options   # label-agnostic
    at.multiselect(key="cls_classes").set_value([]).run()
    assert "Nothing to show" in at.info[0].value


def test_assessment_state_in_the_url(monkeypatch, dash_logdir):
    at = open_page(monkeypatch, dash_logdir, CLS, dash_runs.SYNTH_RUN)
    at.radio(key="cls_mode").set_value("One metric, several explainers").run()
    at.pills(key="cls_tags").set_value(["TP"]).run()
    assert at.query_params["cls_tags"] in ("TP", ["TP"]) and "cls_mode" in at.query_params
    at.switch_page(CMP).run()
    at.pills(key="cmp_loc_tags").set_value([]).run()                 # localisation: every tag
    assert at.query_params["cmp_loc_tags"] in ("", [""])
    at.switch_page(CLS).run()
    assert at.radio(key="cls_mode").value == "One metric, several explainers" and at.pills(key="cls_tags").value == ["TP"]
    at.switch_page(CMP).run()
    assert at.pills(key="cmp_loc_tags").value == []
    assert "localisation metrics every tag" in " ".join(c.value for c in at.caption)


# ---- issue 18 items 5 and 9c: score names, raw values, uninformative metrics -------------------
def test_scores_are_named_after_their_mapping_and_raw_values_are_one_click_away(monkeypatch, dash_logdir):
    at = open_page(monkeypatch, dash_logdir, CMP, dash_runs.RUNNER_RUN)
    table = score_table(at)
    assert "Deletion (1 − AUC)" in table.columns and "Deletion AUC" not in table.columns
    metrics = next(df.value for df in at.dataframe if "direction (raw)" in df.value.columns)
    assert metrics.set_index("metric").loc["deletion_auc", "mapping to [0, 1]"] == "1 − x"   # the README's column
    r = RunReader(dash_logdir / dash_runs.RUNNER_RUN)
    sc = r.scores().merge(r.labels()[["sample_index", "label", "tag"]], on=["sample_index", "label"], how="left")
    raw = sc[(sc.metric == "deletion_auc") & np.isfinite(sc.raw)].groupby("explainer")["raw"].mean()
    at.segmented_control(key="cmp_values").set_value("raw").run()
    assert at.query_params["cmp_values"] in ("raw", ["raw"])
    shown = score_table(at).set_index("explainer")["Deletion AUC (raw, lower better)"].astype(float)
    assert np.allclose(shown[raw.index], raw)
    assert score_table(at)["comprehensive"].tolist() == table["comprehensive"].tolist()   # the score stays


def test_a_metric_random_scores_as_well_as_the_best_is_flagged_on_the_page(monkeypatch, tmp_path):
    from xai_core.summary.manifest import read_manifest, write_manifest

    run = dash_runs.write_synthetic(tmp_path / "ref")
    m = read_manifest(run)
    m["explainers"][1]["type"] = "random"                           # b: a random reference
    write_manifest(run, m)                                          # sealed again, as a writer does
    at = open_page(monkeypatch, tmp_path, CMP, "ref")
    warning = " ".join(w.value for w in at.warning)
    assert "Metric three is uninformative on this run: the random reference b scores 0.750" in warning
    assert "Metric three ⚠" in score_table(at).columns
    assert any("uninformative on this run: Metric three" in c.value for c in at.caption)


def test_huge_weights_rank_like_equal_ones(monkeypatch, dash_logdir, means):
    """Two weights of 1e308 summed to inf and made every weight 0 (an error deep in pandas)."""
    at = open_page(monkeypatch, dash_logdir, CMP, dash_runs.RUNNER_RUN)
    a, b = list(means.columns)[:2]
    for m in means.columns:
        at.number_input(key=f"cmp_w_{m}").set_value(1e308 if m in (a, b) else 0.0)
    at.run()
    assert not at.exception and not at.error
    assert shown_ranking(at) == ranking(means, {a: 1.0, b: 1.0})
