"""The "Compare runs" page under AppTest: two runner-made runs of two models on the same toy
images (tests/dashboard/pages_runs.py)."""

import pytest

import dash_runs
import pages_runs
from apptest_util import open_page
from xai_core.dashboard import compare as C

PAGE = "pages/compare.py"


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return pages_runs.pages_logdir(tmp_path_factory)


@pytest.fixture(scope="module")
def cmp(logdir):
    return C.compare(*pages_runs.load_pair(logdir))


def _frame(at, column):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_defaults_to_a_run_over_the_same_images_and_shows_every_section(monkeypatch, logdir, cmp):
    at = open_page(monkeypatch, logdir, PAGE, pages_runs.RUN_A)
    assert not at.error
    assert at.selectbox(key="vs_run").value == pages_runs.RUN_B      # same dataset first, not the newest run
    assert at.query_params["vs_run"] in (pages_runs.RUN_B, [pages_runs.RUN_B])
    tr = next(t.value for t in at.table if "B: FN" in t.value.columns)
    assert tr.loc["A: TP", "B: FN"] == int((cmp.rows["tag_a"] == "TP").sum())
    rows = _frame(at, "tag A")
    assert len(rows) == int(cmp.rows["changed"].sum())                  # only where the tags differ, by default
    captions = [c for img in at.image for c in img.captions]
    assert any(c.startswith("A: gradient · ") for c in captions) and any(c.startswith("B: gradient · ") for c in captions)
    assert any("one colour scale for both maps" in c.value for c in at.caption)
    diffs = _frame(at, "verdict")
    want = C.score_differences(cmp)
    assert diffs["verdict"].tolist() == want["verdict"].tolist()
    assert diffs["B − A"].tolist() == pytest.approx(want["diff"].tolist(), nan_ok=True)
    assert len(at.get("plotly_chart")) == 1


def test_tp_in_a_fn_in_b_filter_is_kept_in_the_url(monkeypatch, logdir, cmp):
    at = open_page(monkeypatch, logdir, PAGE, pages_runs.RUN_A)
    at.pills(key="vs_tags_a").set_value(["TP"]).run()
    at.pills(key="vs_tags_b").set_value(["FN"]).run()
    rows = _frame(at, "tag A")
    assert len(rows) and set(rows["tag A"]) == {"TP"} and set(rows["tag B"]) == {"FN"}
    assert at.query_params["vs_tags_a"] in ("TP", ["TP"]) and at.query_params["vs_tags_b"] in ("FN", ["FN"])
    # the maps follow the first listed row
    first = f"{rows['sample'].iloc[0]} · {rows['class'].iloc[0]} · TP → FN"
    assert at.selectbox(key="vs_row").format_func(at.selectbox(key="vs_row").value).startswith(first)
    # a reload of that URL opens the same view
    again = open_page(monkeypatch, logdir, None, pages_runs.RUN_A)
    for k in ("vs_tags_a", "vs_tags_b"):
        again.query_params[k] = at.query_params[k]
    again.switch_page(PAGE).run()
    assert _frame(again, "tag A").equals(rows)


def test_other_explainers_in_b_and_a_tag_that_is_not_in_b(monkeypatch, logdir):
    at = open_page(monkeypatch, logdir, PAGE, pages_runs.RUN_A)
    at.toggle(key="vs_changed").set_value(False).run()
    at.selectbox(key="vs_exp_b").set_value("gradcam").run()
    assert not at.exception and not at.error
    captions = [c for img in at.image for c in img.captions]
    assert any(c.startswith("B: gradcam · ") for c in captions)
    diffs = _frame(at, "verdict")
    assert "gradient / gradcam" in diffs["explainer"].tolist()        # the maps' pair is scored too


def test_runs_without_common_samples_get_one_line(monkeypatch, logdir):
    at = open_page(monkeypatch, logdir, PAGE, pages_runs.RUN_A)
    at.selectbox(key="vs_run").set_value(pages_runs.UNRELATED).run()
    assert len(at.error) == 1 and "no sample id in common" in at.error[0].value
    assert not at.exception and not at.dataframe and not at.image and not at.table


def test_a_logdir_with_one_run_says_so(monkeypatch, tmp_path):
    dash_runs.write_synthetic(tmp_path / "only")
    at = open_page(monkeypatch, tmp_path, PAGE, "only")
    assert any("no other run" in i.value for i in at.info) and not at.error


def test_the_configuration_diff_of_a_and_b_is_shown(monkeypatch, logdir):
    at = open_page(monkeypatch, logdir, PAGE, pages_runs.RUN_A)
    exp = next(e for e in at.expander if e.label.startswith("Configuration: "))
    table = next(d.value for d in exp.dataframe)
    assert "labels.threshold" in set(table["setting"]) and exp.label.endswith("differ between A and B")
