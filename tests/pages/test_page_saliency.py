"""Saliency page under AppTest, against the runner-made toy run (all four tags) and the
analyses run (MC-dropout uncertainty: interval chips, the std filter and sort)."""

import re

import numpy as np
import pandas as pd
import pytest

import dash_runs
from apptest_util import open_page, pictures, texts, tiles
from xai_core.summary import RunReader

PAGE = "pages/saliency.py"
CAPTION = r"gradcam · Deletion \(1 − AUC\) of (\w+): (\d\.\d{3}) \(raw (\d\.\d{3})\)"


@pytest.fixture(scope="module")
def expected(dash_logdir):
    """The run's tables read with the plain reader: the reference the page is checked against."""
    r = RunReader(dash_logdir / dash_runs.RUNNER_RUN)
    lab = r.labels().merge(r.samples()[["sample_index", "sample_id"]], on="sample_index")
    return r, lab


@pytest.fixture
def at(monkeypatch, dash_logdir):
    return open_page(monkeypatch, dash_logdir, PAGE, dash_runs.RUNNER_RUN)


def test_shows_every_image_with_a_map_per_explainer(at, expected):
    r, lab = expected
    assert "**12** of 12 images match" in texts(at)
    assert len(pictures(at)) == 12
    assert len(tiles(at)) == 12 * len(r.explainers)
    counts = lab["tag"].value_counts()
    assert at.pills(key="sal_tags").format_func("FP") == f"FP ({counts['FP']})"


def test_tag_filter_changes_the_count(at, expected):
    _, lab = expected
    at.pills(key="sal_tags").set_value(["FP"]).run()
    fp = sorted(lab.loc[lab["tag"] == "FP", "sample_id"].unique())
    assert f"**{len(fp)}** of 12 images match" in texts(at)
    assert sorted(pictures(at)) == fp
    at.pills(key="sal_tags").set_value(["TP", "FN"]).run()
    n = lab.loc[lab["tag"].isin(["TP", "FN"]), "sample_id"].nunique()
    assert f"**{n}** of 12 images match" in texts(at)


def test_label_and_probability_filters(at, expected):
    _, lab = expected
    at.multiselect(key="sal_labels").set_value([0]).run()        # "red": applied at once (no Apply button)
    at.slider(key="sal_prob").set_value((0.5, 1.0)).run()
    want = lab[(lab["label"] == 0) & (lab["prob"] >= 0.5)]["sample_id"].unique()
    assert f"**{len(want)}** of 12 images match" in texts(at)
    assert sorted(pictures(at)) == sorted(want)


def test_sort_by_a_score_ascending(at, expected, dash_logdir):
    r, lab = expected
    at.selectbox(key="sal_sort").set_value("score").run()
    at.selectbox(key="sal_sort_exp").set_value("gradcam").run()
    at.selectbox(key="sal_sort_met").set_value("deletion_auc").run()
    at.radio(key="sal_order").set_value("ascending").run()
    # issue 18: a faithfulness sort starts with TP labels (TN labels at p ≈ 0 led the list) and says so
    assert at.pills(key="sal_tags").value == ["TP"] and at.query_params["sal_tags"] in ("TP", ["TP"])
    assert any("Showing TP labels: Deletion (1 − AUC) is only meaningful" in c.value for c in at.caption)
    # the metric list uses the score names, not raw ids (issue 18)
    assert at.selectbox(key="sal_sort_met").format_func("deletion_auc") == "Deletion (1 − AUC)"
    at.pills(key="sal_tags").set_value([]).run()                 # every tag again: the user's choice stays
    assert at.pills(key="sal_tags").value == [] and not any("Showing TP" in c.value for c in at.caption)
    sc = r.scores()
    sc = sc[(sc.explainer == "gradcam") & (sc.metric == "deletion_auc") & np.isfinite(sc.score)]
    worst = sc.groupby("sample_index")["score"].min()
    ids = r.samples().set_index("sample_index")["sample_id"]
    want = [ids[i] for i in pd.Series(worst).sort_values(kind="stable").index]
    assert pictures(at) == want
    # each row names the label its score belongs to and shows that label's maps (issue 12 item 2)
    caps = [c.value for c in at.caption if c.value.startswith("gradcam · Deletion (1 − AUC) of ")]
    assert len(caps) == len(want)
    for sid, cap in zip(want, caps):
        label_name, value, raw = re.fullmatch(CAPTION, cap).groups()
        worst_rows = sc[sc.sample_index == ids[ids == sid].index[0]]
        assert float(value) == round(worst_rows["score"].min(), 3)
        best = worst_rows.loc[worst_rows["score"] == worst_rows["score"].min()]
        assert label_name in {r.classes[l] for l in best["label"]}
        assert float(raw) == round(float(best["raw"].iloc[0]), 3)      # the raw AUC beside its score
    first_row_tiles = list(tiles(at))[: len(at.multiselect(key="sal_explainers").value)]
    first_label = re.fullmatch(CAPTION, caps[0])[1]
    assert all(k.endswith(f"· {first_label}") for k in first_row_tiles)


def test_sort_by_probability_descending_uses_the_max(at, expected):
    _, lab = expected
    top = lab.groupby("sample_id")["prob"].max().sort_values(ascending=False, kind="stable")
    shown = pictures(at)
    assert [top[s] for s in shown] == sorted(top.values, reverse=True)


def test_overlay_toggle_changes_the_rendered_maps(at):
    before = tiles(at)
    pics = pictures(at)
    at.toggle(key="sal_overlay").set_value(False).run()
    after = tiles(at)
    assert list(after) == list(before) and pictures(at) == pics
    assert all(after[k] != before[k] for k in before)


def test_clicking_a_label_chip_switches_the_maps(at):
    first = list(tiles(at))[0]                     # "0:<explainer> · <label>" of the first row
    chips = [b for b in at.button if b.key and b.key.startswith("sal_chip_")]
    row_pos = chips[0].key.split("_")[2]
    row_chips = [b for b in chips if b.key.split("_")[2] == row_pos]
    other = next(b for b in row_chips if b.proto.type != "primary")
    label_name = other.label.split("] ")[1].split("\u00a0·")[0]
    n_exp = len(at.multiselect(key="sal_explainers").value)
    before = tiles(at)
    assert not any(k.endswith(f"· {label_name}") for k in list(before)[:n_exp])
    other.click().run()
    after = tiles(at)
    assert all(k.endswith(f"· {label_name}") for k in list(after)[:n_exp])   # the first row's maps
    assert list(after.values())[0] != before[first]
    assert at.button(key=other.key).proto.type == "primary"


def test_detail_view_has_pictures_legends_and_scores(at, expected):
    r, lab = expected
    # show a non-ground-truth label on a row first: the dialog must open on it (issue 18)
    chips = [b for b in at.button if b.key and b.key.startswith("sal_chip_")]
    other = next(b for b in chips if b.proto.type != "primary" and "TN" in b.label)
    pos, label = map(int, other.key.split("_")[2:4])
    other.click().run()
    det = at.button(key=f"sal_det_{pos}")
    det.click().run()
    assert not at.exception
    assert at.segmented_control(key=f"sal_detail_label_{pos}").value == label
    assert not at.get("plotly_chart")       # pictures first: the interactive chart is opt-in
    caps = [c for img in at.image for c in img.captions]
    names = [e["name"] for e in r.explainers]
    assert any(c.startswith("image") for c in caps) and all(any(c.startswith(f"{e} · ") for c in caps) for e in names)
    assert any("ground truth" in m.value for m in at.markdown)
    # explainers × metrics for the label shown, headed by the score names (issue 18: 56 rows
    # keyed by bare label indices)
    scores = next(tb.value for tb in at.table if "Pointing Game" in tb.value.columns)
    assert scores.shape == (len(r.explainers), len(r.metrics)) and "Deletion (1 − AUC)" in scores.columns
    cells = scores.to_numpy().ravel().tolist()
    assert set(scores["Pointing Game"]) == {"—"}          # a TN label has no object to point at
    assert "None" not in cells and "nan" not in cells
    at.toggle(key="sal_detail_interactive").set_value(True)     # (AppTest reruns the page, not the dialog:
    at.button(key=det.key).click().run()                       # open it again in the same run)
    assert len(at.get("plotly_chart")) == 1 and not at.exception


def test_detail_opens_on_the_label_of_the_sort(monkeypatch, dash_logdir):
    """Issue 18 item 1: after sorting by a score, Details opened on another label than the row's
    (the first chip, the most probable label, instead of the one the sort value belongs to)."""
    at = open_page(monkeypatch, dash_logdir, None)
    at.query_params.update(run=dash_runs.SYNTH_RUN, sal_sort="score", sal_sort_exp="a", sal_sort_met="m1",
                           sal_order="ascending")
    at.switch_page(PAGE).run()
    caps = [c.value for c in at.caption if "Metric one" in c.value and " of " in c.value]
    dets = [b for b in at.button if b.key and b.key.startswith("sal_det_")]
    assert len(caps) == len(dets) == 5
    # img0: dog 0.2 < cat 0.9, so its row shows dog although cat is its first (most probable) chip
    assert any(c.endswith("of dog: 0.200") for c in caps)
    for k, cap in enumerate(caps):
        det = [b for b in at.button if b.key and b.key.startswith("sal_det_")][k]
        pos, name = int(det.key.split("_")[2]), cap.split(" of ")[1].split(":")[0]
        det.click().run()
        assert dash_runs.CLASSES[at.segmented_control(key=f"sal_detail_label_{pos}").value] == name, cap
    assert any(m.value.startswith(f"**Scores of this image for {name}**") for m in at.markdown)


def test_display_options(at):
    at.selectbox(key="sal_polarity").set_value("signed").run()
    assert at.selectbox(key="sal_cmap_div").options[0] == "RdBu_r"
    at.radio(key="sal_scale").set_value("map").run()
    at.selectbox(key="sal_page_size").set_value(24).run()
    at.multiselect(key="sal_explainers").set_value(["gradcam"]).run()
    assert not at.exception and len(tiles(at)) == 12


def test_unknown_run_in_the_url_is_not_opened(monkeypatch, dash_logdir):
    at = open_page(monkeypatch, dash_logdir, None)
    at.query_params["run"] = "../../../etc"
    at.switch_page(PAGE).run()
    assert "No run named" in at.sidebar.warning[0].value
    assert "../../../etc" in [t.value for t in at.sidebar.text]  # plain text, not markdown
    assert "Choose a run" in at.info[0].value and "run" not in at.query_params


@pytest.mark.parametrize("run, message", [("broken/corrupt_part", "corrupt"), ("broken/newer", "upgrade")])
def test_broken_run_shows_a_message(monkeypatch, dash_logdir, run, message):
    at = open_page(monkeypatch, dash_logdir, PAGE, run)
    assert message in at.error[0].value


# ---- a run with MC-dropout uncertainty -------------------------------------------------------
@pytest.fixture
def unc(monkeypatch, dash_logdir):
    r = RunReader(dash_logdir / dash_runs.ANALYSES_RUN)
    lab = r.labels().merge(r.samples()[["sample_index", "sample_id"]], on="sample_index")
    return open_page(monkeypatch, dash_logdir, PAGE, dash_runs.ANALYSES_RUN), lab


def test_chips_show_the_95_interval(unc):
    at, lab = unc
    chips = [b for b in at.button if b.key and b.key.startswith("sal_chip_")]
    assert len(chips) == len(lab)
    interval = re.compile(r"\] \w+\u00a0·\u00a0(\d\.\d{3}) \[(\d\.\d{2})\u2060–\u2060(\d\.\d{2})\]$")
    for b in chips:
        p, lo, hi = map(float, interval.search(b.label).groups())
        assert "±" not in b.label and "standard deviation" in b.help
    shown = {(float(m[1]), float(m[2]), float(m[3])) for m in (interval.search(b.label) for b in chips)}
    want = {(round(p, 3), round(lo, 2), round(hi, 2)) for p, lo, hi in zip(lab["prob"], lab["ci_low"], lab["ci_high"])}
    assert shown == want


def test_uncertainty_filter_changes_the_count(unc, monkeypatch, dash_logdir):
    at, lab = unc
    lo, hi = at.slider(key="sal_std").value
    assert lo == 0.0 and hi >= lab["prob_std"].max()
    at.slider(key="sal_std").set_value((0.1, hi)).run()
    want = lab.loc[lab["prob_std"] >= 0.1, "sample_id"].unique()
    assert 0 < len(want) < 12
    assert f"**{len(want)}** of 12 images match" in texts(at)
    assert sorted(pictures(at)) == sorted(want)
    at.slider(key="sal_std").set_value((0.0, 0.0)).run()
    assert f"**{lab.loc[lab['prob_std'] <= 0, 'sample_id'].nunique()}** of 12 images match" in texts(at)
    plain = open_page(monkeypatch, dash_logdir, PAGE, dash_runs.RUNNER_RUN)   # no uncertainty: no slider
    assert "sal_std" not in [s.key for s in plain.slider]


def test_sort_by_uncertainty(unc):
    at, lab = unc
    at.selectbox(key="sal_sort").set_value("uncertainty").run()
    top = lab.groupby("sample_id")["prob_std"].max()
    shown = pictures(at)
    assert [top[s] for s in shown] == sorted(top.values, reverse=True)
    assert any(re.fullmatch(r"uncertainty of \w+: \d\.\d{3}", c.value) for c in at.caption)


def test_anchor_tiles_show_precision_and_coverage(unc, dash_logdir):
    at, lab = unc
    det = RunReader(dash_logdir / dash_runs.ANALYSES_RUN).details()
    anchors = det[(det["explainer"] == "anchors") & (det["key"] == "precision")]
    captions = [c for img in at.image for c in img.captions if c.startswith("anchors · ")]
    found = [c for c in captions if "precision" in c]
    assert found and all(re.search(r"precision \d\.\d{3} · coverage \d\.\d{3} · \d+ superpixels?$", c) for c in found)
    shown = {float(re.search(r"precision (\d\.\d{3})", c)[1]) for c in found}
    assert shown <= {round(v, 3) for v in anchors["value"]}
    # an empty anchor says what it means, not "precision 1.000 · 0 superpixels" (issue 18)
    chip = next(b for b in at.button if b.key and b.key.startswith("sal_chip_") and re.search(r"\[(TN|FN)\]", b.label))
    name = chip.label.split("] ")[1].split("\u00a0·")[0]
    chip.click().run()
    captions = [c for img in at.image for c in img.captions if c.startswith(f"anchors · {name}")]
    assert "anchors · " + name + " · no anchor: the model does not predict this label, whatever the pixels" in captions
    assert not any(re.search(r"\b0 superpixels", c) for img in at.image for c in img.captions)
    # maps without per-pair figures keep the plain caption
    assert all(re.fullmatch(r"gradient · \w+", c) for img in at.image for c in img.captions if c.startswith("gradient"))


def test_a_missing_chunk_shows_as_damage_not_as_empty_maps(monkeypatch, tmp_path):
    run = dash_runs.write_synthetic(tmp_path / "hurt")
    chunk = next(f for f in sorted((run / "arrays" / "part-000001.zarr" / "saliency" / "a").rglob("*"))
                 if f.is_file() and "/c/" in f.as_posix())
    chunk.unlink()
    at = open_page(monkeypatch, tmp_path, PAGE, "hurt")
    warnings = " ".join(w.value for w in at.warning)
    assert "part 1, array 'saliency/a'" in warnings and "missing" in warnings
    assert len(pictures(at)) == 5  # the healthy maps and every image still show


def test_a_failed_run_shows_its_error_not_an_empty_grid(monkeypatch, dash_logdir):
    for page in (PAGE, "pages/comprehensive.py", "pages/counterfactual.py"):
        at = open_page(monkeypatch, dash_logdir, page, "broken/failed")
        assert at.error and dash_runs.FAILED_ERROR in at.error[0].value and "This run failed" in at.error[0].value
        assert not pictures(at) and "images match" not in texts(at)


# ---- issue 12: state in the URL and across pages; tag pills; labels of the run ---------------
def test_state_survives_a_page_switch_and_comes_from_the_url(monkeypatch, dash_logdir):
    at = open_page(monkeypatch, dash_logdir, PAGE, dash_runs.RUNNER_RUN)
    at.pills(key="sal_tags").set_value(["FN"]).run()
    at.slider(key="sal_opacity").set_value(0.8).run()
    at.selectbox(key="sal_cmap_seq").set_value("viridis").run()
    at.multiselect(key="sal_explainers").set_value(["gradcam"]).run()
    url = {k: [v] if isinstance(v := at.query_params[k], str) else list(v)
           for k in ("sal_tags", "sal_opacity", "sal_cmap_seq", "sal_explainers")}
    assert url == {"sal_tags": ["FN"], "sal_opacity": ["0.8"], "sal_cmap_seq": ["viridis"], "sal_explainers": ["gradcam"]}
    assert "sal_sort" not in at.query_params                       # defaults stay out of the URL
    at.switch_page("pages/comprehensive.py").run()
    at.number_input(key="cmp_w_sparseness").set_value(3.0).run()   # > 1 is accepted: weights are ratios
    assert not at.exception and at.number_input(key="cmp_w_sparseness").value == 3.0
    at.switch_page(PAGE).run()
    assert at.pills(key="sal_tags").value == ["FN"] and at.slider(key="sal_opacity").value == 0.8
    assert at.selectbox(key="sal_cmap_seq").value == "viridis" and at.multiselect(key="sal_explainers").value == ["gradcam"]
    at.switch_page("pages/comprehensive.py").run()
    assert at.number_input(key="cmp_w_sparseness").value == 3.0
    # a fresh session (reload, shared link) starts from the URL; values that do not fit are ignored
    monkeypatch.setenv("XAI_LOGDIR", str(dash_logdir))
    from streamlit.testing.v1 import AppTest

    from apptest_util import ROOT, TIMEOUT
    fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    fresh.query_params.update(run=dash_runs.RUNNER_RUN, sal_tags=["FN"], sal_sort="score", sal_sort_exp="gradcam",
                              sal_sort_met="pointing_game", sal_order="ascending", sal_opacity="7", sal_labels=["0", "999"])
    fresh.run()
    fresh.switch_page(PAGE).run()
    assert not fresh.exception
    assert fresh.pills(key="sal_tags").value == ["FN"] and fresh.selectbox(key="sal_sort").value == "score"
    assert fresh.selectbox(key="sal_sort_met").value == "pointing_game" and fresh.radio(key="sal_order").value == "ascending"
    assert fresh.slider(key="sal_opacity").value == 0.5 and fresh.multiselect(key="sal_labels").value == []


def test_a_tag_pill_click_selects_only_that_tag(at, expected):
    _, lab = expected
    assert at.pills(key="sal_tags").value == []                    # none selected = every tag
    assert "**12** of 12 images match" in texts(at)
    at.pills(key="sal_tags").set_value(["FN"]).run()                # what one click on FN gives
    fn = sorted(lab.loc[lab["tag"] == "FN", "sample_id"].unique())
    assert sorted(pictures(at)) == fn and f"**{len(fn)}** of 12 images match" in texts(at)


def test_labels_filter_offers_the_labels_of_the_run(at, expected):
    _, lab = expected
    assert at.multiselect(key="sal_labels").options == [at.multiselect(key="sal_labels").format_func(l)
                                                        for l in sorted(lab["label"].unique())]


def test_each_explainer_column_has_a_colour_bar(at):
    n = len(at.multiselect(key="sal_explainers").value)
    bars = [c.value for c in at.caption if re.fullmatch(r"0 … [\d.e+-]+", c.value)]
    assert len(bars) == n
    at.selectbox(key="sal_polarity").set_value("signed").run()
    assert len([c for c in at.caption if re.fullmatch(r"-[\d.e+-]+ … [\d.e+-]+", c.value)]) == n


def test_a_run_that_failed_half_way_shows_its_error_and_what_it_finished(monkeypatch, tmp_path):
    from xai_core.summary.manifest import read_manifest, write_manifest

    run = dash_runs.write_synthetic(tmp_path / "half")
    m = read_manifest(run)
    m.update(status="failed", error="OutOfMemoryError: part 2")
    write_manifest(run, m)
    at = open_page(monkeypatch, tmp_path, PAGE, "half")
    assert "This run failed: OutOfMemoryError: part 2" in at.error[0].value and "5 finished images" in at.error[0].value
    assert len(pictures(at)) == 5


# ---- issue 18 item 2: a run written into the logdir while the page reruns ----------------------
def test_pages_keep_their_content_while_a_run_is_written_into_the_logdir(monkeypatch, tmp_path):
    """Every rerun of the saliency and assessment pages, of a finished run and of the run being
    written, draws its title and grid or says why, while another thread commits parts and
    rewrites the manifest and replaces the run (the listing and the reading of a run may see
    different versions: an overwritten run used to read as "part 0 … corrupt or missing")."""
    import threading

    dash_runs.write_synthetic(tmp_path / "done")
    stop = threading.Event()
    writer = threading.Thread(target=dash_runs.write_while, args=(tmp_path / "live", stop, 0.05), daemon=True)
    writer.start()
    try:
        pages = [open_page(monkeypatch, tmp_path, PAGE, "done")]
        while not (tmp_path / "live" / "manifest.json").is_file():
            stop.wait(0.05)
        pages.append(open_page(monkeypatch, tmp_path, PAGE, "live"))
        pages.append(open_page(monkeypatch, tmp_path, "pages/comprehensive.py", "live"))
        for _ in range(8):
            for at in pages:
                at.run()
                assert not at.exception, [e.value for e in at.exception]
                assert not at.error, [e.value for e in at.error]       # a run being replaced is not "corrupt"
                if not at.title:                                      # caught between two versions: it says so
                    assert "is being written or rewritten right now" in at.warning[0].value
                    continue
                assert at.title[0].value in ("Saliency maps", "Comprehensive assessment")
                if at.title[0].value == "Saliency maps":
                    assert "images match" in texts(at)
                else:                                             # the scores, or why there are none
                    assert [h.value for h in at.subheader] == ["Scores"] or at.info
        assert "**5** of 5 images match" in texts(pages[0])
    finally:
        stop.set()
        writer.join(timeout=30)
    assert not writer.is_alive()


# ---- issue 18 item 4: Vertex-style display options ---------------------------------------------
def test_outlines_display_and_clip_range(at):
    heat = tiles(at)
    at.segmented_control(key="sal_display").set_value("outlines").run()
    assert not at.exception
    assert at.slider(key="sal_clip_out").value == (62.0, 99.9)        # Vertex's defaults for outlines
    assert at.toggle(key="sal_overlay").proto.disabled and not at.slider(key="sal_mass").proto.disabled
    outl = tiles(at)
    assert list(outl) == list(heat) and all(outl[k] != heat[k] for k in heat)
    assert all(c.value == "outline: 50 % of the mass" for c in at.caption if c.value.startswith("outline:"))
    assert at.query_params["sal_display"] in ("outlines", ["outlines"])
    at.selectbox(key="sal_cmap_seq").set_value("pink_green").run()
    at.slider(key="sal_mass").set_value(80.0).run()
    assert not at.exception and any(c.value == "outline: 80 % of the mass" for c in at.caption)
    at.segmented_control(key="sal_display").set_value("heatmap").run()
    at.slider(key="sal_clip").set_value((50.0, 99.5)).run()           # a lower clip on the heat map
    assert not at.exception and all(tiles(at)[k] != heat[k] for k in heat)
    assert at.query_params["sal_clip"] == ["50", "99.5"]


def test_switching_to_the_heat_map_and_back_keeps_both_clip_ranges(monkeypatch, dash_logdir):
    at = open_page(monkeypatch, dash_logdir, PAGE, dash_runs.SYNTH_RUN)
    at.segmented_control(key="sal_display").set_value("outlines").run()
    at.slider(key="sal_clip_out").set_value((50.0, 99.0)).run()
    at.segmented_control(key="sal_display").set_value("heatmap").run()
    at.slider(key="sal_clip").set_value((5.0, 98.0)).run()
    at.segmented_control(key="sal_display").set_value("outlines").run()
    assert at.slider(key="sal_clip_out").value == (50.0, 99.0)
    at.segmented_control(key="sal_display").set_value("heatmap").run()
    assert at.slider(key="sal_clip").value == (5.0, 98.0) and not at.exception


def test_the_detail_view_steps_through_the_grid_with_previous_and_next(monkeypatch, dash_logdir):
    at = open_page(monkeypatch, dash_logdir, PAGE, dash_runs.SYNTH_RUN)
    order = [int(b.key.split("_")[2]) for b in at.button if b.key and b.key.startswith("sal_det_")]
    at.button(key=f"sal_det_{order[0]}").click().run()
    assert at.button(key="sal_detail_prev").disabled and not at.button(key="sal_detail_next").disabled
    for pos in order[1:]:
        at.button(key="sal_detail_next").click().run()
        assert not at.exception and at.segmented_control(key=f"sal_detail_label_{pos}") is not None
    assert at.button(key="sal_detail_next").disabled
    at.button(key="sal_detail_prev").click().run()
    assert at.segmented_control(key=f"sal_detail_label_{order[-2]}") is not None
