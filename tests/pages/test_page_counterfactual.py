"""Counterfactual page under AppTest, against the runner-made analyses run (counterfactual
search on) and the synthetic run (none)."""

import pytest

import dash_runs
from apptest_util import open_page, texts
from xai_core.summary import RunReader

PAGE = "pages/counterfactual.py"


@pytest.fixture(scope="module")
def expected(dash_logdir):
    r = RunReader(dash_logdir / dash_runs.ANALYSES_RUN)
    cf = r.table("counterfactuals").merge(r.samples()[["sample_index", "sample_id"]], on="sample_index")
    return r, cf


@pytest.fixture
def at(monkeypatch, dash_logdir):
    return open_page(monkeypatch, dash_logdir, PAGE, dash_runs.ANALYSES_RUN)


def _strip(at):
    """[(caption, media url)] of the strip's pictures: the original then one per layer."""
    return [(c, u) for img in at.image for c, u in zip(img.captions, img.value)]


def test_renders_the_strip_of_the_first_image(at, expected):
    r, cf = expected
    assert not at.exception and not at.error
    n = cf["sample_id"].nunique()
    assert f"**{n}** of 12 images listed" in texts(at)
    first = at.selectbox(key="cf_image")
    assert first.format_func(first.value).startswith(sorted(cf["sample_id"].unique())[0])
    sid = first.format_func(first.value).split(" · ")[0]
    rows = cf[cf["sample_id"] == sid]
    label = r.classes[int(rows["label"].iat[0])]
    strip = _strip(at)
    n_layers = int((rows["label"] == rows["label"].iat[0]).sum())
    assert len(strip) == 1 + n_layers
    assert strip[0][0].startswith(f"original · {label}")
    assert all("px · p = " in c for c, _ in strip[1:])
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 1 + n_layers  # probability per layer


def test_hide_switch_changes_the_listed_count(at, expected):
    _, cf = expected
    at.toggle(key="cf_hide").set_value(False).run()
    assert not at.exception
    assert "**12** of 12 images listed" in texts(at)
    assert len(at.selectbox(key="cf_image").options) == 12
    at.toggle(key="cf_hide").set_value(True).run()
    assert f"**{cf['sample_id'].nunique()}** of 12 images listed" in texts(at)


def test_label_and_tag_filters(at, expected):
    r, cf = expected
    label = int(cf["label"].value_counts().index[-1])
    at.multiselect(key="cf_labels").set_value([label]).run()
    assert f"**{cf.loc[cf['label'] == label, 'sample_id'].nunique()}** of 12 images listed" in texts(at)
    at.multiselect(key="cf_labels").set_value([]).run()
    at.pills(key="cf_tags").set_value(["FN"]).run()   # FN labels are below the threshold: never searched
    assert "**0** of 12 images listed" in texts(at) and "No image matches" in at.info[0].value


def test_label_selector_changes_the_strip(at, expected):
    r, cf = expected
    two = cf.groupby("sample_id")["label"].nunique()
    sid = two[two > 1].index[0]
    box = at.selectbox(key="cf_image")
    pos = next(o for o in box.options if o.startswith(sid))
    box.select(pos).run()
    before = _strip(at)
    ctl = at.segmented_control[0]          # one label selector per image (key cf_label_<pos>)
    assert ctl.key.startswith("cf_label_")
    other = next(o for o in ctl.options if o != ctl.format_func(ctl.value))
    ctl.set_value(r.classes.index(other)).run()
    after = _strip(at)
    assert not at.exception and after != before
    assert after[0][0].startswith(f"original · {other}") and before[0][0].startswith("original · ")
    assert not before[0][0].startswith(f"original · {other}")


def test_run_without_counterfactuals_says_how_to_enable_them(monkeypatch, dash_logdir):
    at = open_page(monkeypatch, dash_logdir, PAGE, dash_runs.SYNTH_RUN)
    assert "counterfactual: {enabled: true}" in at.info[0].value
    assert not at.image


def test_filters_and_image_live_in_the_url(at, dash_logdir):
    at.toggle(key="cf_hide").set_value(False).run()
    assert "**12** of 12 images listed" in texts(at)
    pos = 1                                              # the second image (listed now that all are)
    at.selectbox(key="cf_image").set_value(pos).run()
    assert at.query_params["cf_hide"] in ("0", ["0"]) and at.query_params["cf_image"] in (str(pos), [str(pos)])
    from streamlit.testing.v1 import AppTest

    from apptest_util import ROOT, TIMEOUT
    fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    fresh.query_params.update(run=dash_runs.ANALYSES_RUN, cf_hide="0", cf_image=str(pos), cf_tags=["TP"])
    fresh.run()
    fresh.switch_page(PAGE).run()
    assert not fresh.exception
    assert fresh.toggle(key="cf_hide").value is False and fresh.selectbox(key="cf_image").value == pos
    assert fresh.pills(key="cf_tags").value == ["TP"]
